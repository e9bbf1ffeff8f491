// Markdown (GitHub-flavoured, Mermaid blocks as diagrams) → one self-contained HTML page
// styled like a GitHub job summary, every <details> opened so a screenshot shows all.
//   node render.mjs SUMMARY.md OUT.html
import { marked } from 'marked';
import fs from 'fs';
import path from 'path';

const [input, output] = process.argv.slice(2);
const md = fs.readFileSync(input, 'utf8');
const renderer = new marked.Renderer();
const code = renderer.code.bind(renderer);
renderer.code = (tok) =>
  tok.lang === 'mermaid' ? `<pre class="mermaid">${tok.text}</pre>` : code(tok);
const body = marked.parse(md, { gfm: true, renderer });
const here = path.dirname(new URL(import.meta.url).pathname);
const mermaid = fs.readFileSync(
  path.join(here, 'node_modules/mermaid/dist/mermaid.min.js'),
  'utf8',
);
fs.writeFileSync(
  output,
  `<!doctype html><meta charset="utf-8"><style>
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:14px;max-width:1000px;margin:20px auto;color:#1f2328}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d1d9e0;padding:6px 13px}tr:nth-child(2n){background:#f6f8fa}
code{background:#eff1f3;padding:.2em .4em;border-radius:6px;font-size:85%}details{margin:8px 0}h2{border-bottom:1px solid #d1d9e0}
blockquote{color:#59636e;border-left:.25em solid #d1d9e0;margin:0;padding:0 1em}</style>
<body>${body}<script>${mermaid}</script><script>mermaid.initialize({startOnLoad:true});
document.querySelectorAll('details').forEach(d=>d.open=true);</script></body>`,
);
