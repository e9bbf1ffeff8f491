//! The three renderings of a [`Report`]: terminal tables (comfy-table), Markdown in the
//! style of a CI job summary, and JSON.

use super::{Finding, Report, Severity};
use crate::output::human_bytes;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Bytes in binary units with one decimal (`1.5 GiB`, `392 B`), as tables show them.
fn bytes(n: u64) -> String {
    human_bytes(n)
}

/// Pretty JSON of the report, secrets hidden in every string.
pub fn json(report: &Report) -> String {
    let mut s = match serde_json::to_value(report) {
        Ok(mut v) => {
            crate::redact::json_strings(&mut v, &|s| super::hide_secrets(s, &report.secrets));
            serde_json::to_string_pretty(&v)
        }
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

fn headline(report: &Report) -> (bool, String) {
    let e = report.count(Severity::Error);
    let w = report.count(Severity::Warning);
    if e + w == 0 {
        (true, "no problems found".to_owned())
    } else {
        let mut parts = Vec::new();
        if e > 0 {
            parts.push(format!("{e} error{}", if e == 1 { "" } else { "s" }));
        }
        if w > 0 {
            parts.push(format!("{w} warning{}", if w == 1 { "" } else { "s" }));
        }
        (false, parts.join(", "))
    }
}

fn location(f: &Finding) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(l)) => format!("{file}:{l}"),
        (Some(file), None) => file.clone(),
        _ => String::new(),
    }
}

/// The terminal's width when stdout is one whose size is known and usable (a
/// pseudo-terminal without a size reports 0 or nothing).
fn term_width(tty: bool) -> Option<usize> {
    if !tty {
        return None;
    }
    Table::new()
        .width()
        .map(usize::from)
        .filter(|&w| w >= MIN_WIDTH)
}

/// Narrower terminals are left alone (nothing fits there).
const MIN_WIDTH: usize = 40;

/// Below this width the tables of several prose columns (closures, coverage, findings)
/// are printed as one block per row.
const BLOCKS_BELOW: usize = 100;

fn narrow(tty: bool) -> bool {
    term_width(tty).is_some_and(|w| w < BLOCKS_BELOW)
}

fn new_table(tty: bool) -> Table {
    let mut t = Table::new();
    if tty {
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        // Wrap to the terminal only when its width is known and usable; a pseudo-terminal
        // without a size would squeeze every column to one character.
        if let Some(w) = term_width(true) {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(u16::try_from(w).unwrap_or(u16::MAX));
        }
    } else {
        t.load_preset(presets::ASCII_MARKDOWN);
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    t
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// Terminal report: one table per section, secrets hidden. `color` adds bold headings only (never in
/// JSON or Markdown, never with NO_COLOR or off a terminal).
pub fn table_sections(report: &Report, tty: bool, color: bool, sections: Sections) -> String {
    super::hide_secrets(
        &table_unredacted(report, tty, color, sections),
        &report.secrets,
    )
}

/// `hello-2.12` for `/nix/store/<hash>-hello-2.12` (the JSON keeps the full path); with
/// the hash's first 8 characters when another of `all` has the same name.
fn short_path(path: &str, all: &[&str]) -> String {
    let Some(name) = crate::storepath::name(path) else {
        return path.to_owned();
    };
    let twins = all
        .iter()
        .filter(|p| crate::storepath::name(p) == Some(name))
        .count();
    match crate::storepath::hash_part(path) {
        Some(h) if twins > 1 => format!("{name} ({})", &h[..8]),
        _ => name.to_owned(),
    }
}

/// Word-wraps every prose line of a table report to `width`: not table lines (box
/// characters, `|` or `+` first) and not command lines (`$ ...`, kept whole for
/// copying). Continuation lines keep the line's indent (and a list item's number). A
/// word longer than the width (a URL) stays whole.
fn wrap_prose(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let is_table = trimmed.starts_with(['┌', '│', '├', '└', '╞', '|', '+']);
        if line.chars().count() <= width || is_table || trimmed.starts_with("$ ") {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let lead = line.len() - trimmed.len();
        let item = trimmed
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(2, |(n, _)| n.len() + 2);
        let indent = " ".repeat(lead + item);
        let mut cur = line[..lead].to_owned();
        let mut has_word = false;
        for word in trimmed.split(' ').filter(|w| !w.is_empty()) {
            if has_word && cur.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&cur);
                out.push('\n');
                cur.clone_from(&indent);
                has_word = false;
            }
            if has_word {
                cur.push(' ');
            }
            cur.push_str(word);
            has_word = true;
        }
        out.push_str(&cur);
        out.push('\n');
    }
    out
}

fn table_unredacted(report: &Report, tty: bool, color: bool, sections: Sections) -> String {
    let text = table_body(report, tty, color, sections);
    match term_width(tty) {
        Some(w) => wrap_prose(&short_prose_paths(&text, &report.store.store_dir), w),
        None => text,
    }
}

/// On a terminal, store paths in prose by their names, as in the tables: every line but
/// commands (`$ ...`, kept whole for copying). A name that two different paths of the
/// text share keeps the hash's first 8 characters. Off a terminal (a file, a pipe) and
/// in JSON and Markdown the paths stay whole.
fn short_prose_paths(text: &str, store_dir: &str) -> String {
    let Ok(re) = regex::Regex::new(&format!(
        "{}/([0-9a-df-np-sv-z]{{32}})-([A-Za-z0-9+._?=-]+)",
        regex::escape(store_dir.trim_end_matches('/'))
    )) else {
        return text.to_owned();
    };
    let mut hashes: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    for c in re.captures_iter(text) {
        if let (Some(h), Some(n)) = (c.get(1), c.get(2)) {
            hashes.entry(n.as_str()).or_default().insert(h.as_str());
        }
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("$ ") {
            out.push_str(line);
            continue;
        }
        let short = re.replace_all(line, |c: &regex::Captures<'_>| {
            let (h, n) = (&c[1], &c[2]);
            if hashes.get(n).is_some_and(|s| s.len() > 1) {
                format!("{n} ({})", &h[..8])
            } else {
                n.to_owned()
            }
        });
        out.push_str(&short);
    }
    out
}

/// How the table report is drawn: box characters on a terminal (`tty`), bold headings
/// with `color`.
#[derive(Debug, Clone, Copy)]
struct Style {
    tty: bool,
    color: bool,
}

impl Style {
    /// A section's heading line (without the newline).
    fn heading(self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn table(self) -> Table {
        new_table(self.tty)
    }

    /// Whether tables of prose columns are printed as one block per row.
    fn narrow(self) -> bool {
        narrow(self.tty)
    }
}

fn table_body(report: &Report, tty: bool, color: bool, sections: Sections) -> String {
    let st = Style { tty, color };
    let mut out = String::new();
    let (ok, text) = headline(report);
    out.push_str(&format!(
        "{} Nix store report: {text}\n",
        if ok { "✅" } else { "⚠️ " }
    ));
    out.push_str(&format!("Source: {}\n\n", report.source.describe()));
    if sections.has("store") {
        store_table(&mut out, &report.store, st);
    }
    if sections.has("paths") && !report.largest_paths.is_empty() {
        paths_table(&mut out, &report.largest_paths, st);
    }
    if sections.has("closures") && !report.largest_closures.is_empty() {
        closures_table(&mut out, &report.largest_closures, st);
    }
    if let Some(gc) = report.gc.as_ref().filter(|_| sections.has("gc")) {
        gc_table(&mut out, gc, st);
    }
    if sections.has("coverage") {
        coverage_table(&mut out, report, st);
    }
    if let Some(d) = report.diff.as_ref().filter(|_| sections.has("diff")) {
        diff_table(&mut out, d, st);
    }
    if sections.has("config") || sections.has("findings") {
        findings_table(&mut out, report, sections, st);
    }
    if sections.has("recommendations") && !report.recommendations.is_empty() {
        recommendations_table(&mut out, &report.recommendations, st);
    }
    out
}

fn store_table(out: &mut String, s: &super::StoreSection, st: Style) {
    out.push_str(&st.heading("Store"));
    out.push('\n');
    let mut t = st.table();
    t.set_header(vec!["", "paths", "NAR size", "share of NAR"]);
    t.add_row(vec![
        Cell::new("all valid paths"),
        right(thousands(s.paths)),
        right(bytes(s.nar_bytes)),
        right("100%".to_owned()),
    ]);
    t.add_row(vec![
        Cell::new(".drv files"),
        right(thousands(s.drv.paths)),
        right(bytes(s.drv.nar_bytes)),
        right(pct(s.drv.nar_bytes, s.nar_bytes)),
    ]);
    t.add_row(vec![
        Cell::new("-source paths"),
        right(thousands(s.source_paths.paths)),
        right(bytes(s.source_paths.nar_bytes)),
        right(pct(s.source_paths.nar_bytes, s.nar_bytes)),
    ]);
    out.push_str(&t.to_string());
    out.push('\n');
    if let Some(fs) = &s.filesystem {
        out.push_str(&format!(
            "Filesystem {}: {} free of {}\n",
            fs.mount_point.display(),
            bytes(fs.available_bytes),
            bytes(fs.total_bytes)
        ));
    }
    out.push('\n');
}

fn paths_table(out: &mut String, paths: &[super::PathEntry], st: Style) {
    out.push_str(&st.heading("Largest paths"));
    out.push('\n');
    let mut t = st.table();
    t.set_header(vec!["#", "path", "NAR size"]);
    let all: Vec<&str> = paths.iter().map(|p| p.path.as_str()).collect();
    for (i, p) in paths.iter().enumerate() {
        t.add_row(vec![
            right((i + 1).to_string()),
            Cell::new(short_path(&p.path, &all)),
            right(bytes(p.nar_size)),
        ]);
    }
    out.push_str(&t.to_string());
    out.push_str("\n\n");
}

fn closures_table(out: &mut String, closures: &[super::ClosureEntry], st: Style) {
    out.push_str(&st.heading("Largest closures (GC roots)"));
    out.push('\n');
    let all: Vec<&str> = closures.iter().map(|c| c.path.as_str()).collect();
    if st.narrow() {
        for (i, c) in closures.iter().enumerate() {
            out.push_str(&format!(
                "{}. {}{}\n   → {}: {}, {}; deleting it frees {}\n",
                i + 1,
                c.root,
                if c.roots.len() > 1 {
                    format!(" (+{} more)", c.roots.len() - 1)
                } else {
                    String::new()
                },
                short_path(&c.path, &all),
                count(c.closure_paths, "path"),
                bytes(c.closure_size),
                freed(c)
            ));
        }
    } else {
        let mut t = st.table();
        t.set_header(vec![
            "#",
            "root (delete to release)",
            "store path",
            "paths",
            "closure size",
            "deleting it frees",
        ]);
        for (i, c) in closures.iter().enumerate() {
            let mut root = c.root.clone();
            if c.roots.len() > 1 {
                root.push_str(&format!(" (+{} more)", c.roots.len() - 1));
            }
            t.add_row(vec![
                right((i + 1).to_string()),
                Cell::new(root),
                Cell::new(short_path(&c.path, &all)),
                right(thousands(c.closure_paths)),
                right(bytes(c.closure_size)),
                right(freed(c)),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if let Some(line) = most_shared(closures) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
}

fn gc_table(out: &mut String, gc: &super::GcSection, st: Style) {
    out.push_str(&st.heading("Garbage"));
    out.push('\n');
    out.push_str(&format!(
        "{}{} dead paths ({}) not reachable from {} ({} rooted paths, {} live paths).\n",
        if gc.dead_is_upper_bound {
            "At most "
        } else {
            ""
        },
        thousands(gc.dead_paths),
        bytes(gc.dead_nar_bytes),
        count(gc.roots, "GC root"),
        thousands(gc.root_paths),
        thousands(gc.live_paths)
    ));
    if gc.dead_is_upper_bound {
        out.push_str(&format!(
            "  upper bound: {} GC-root location(s) could not be read, and paths only they keep are counted as dead: {}\n",
            gc.unreadable_roots.len(),
            gc.unreadable_roots
                .iter()
                .map(|u| u.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for c in &gc.caveats {
        out.push_str(&format!("  note: {c}\n"));
    }
    out.push('\n');
}

/// The `--closure` line and each cache's share of it.
fn coverage_table(out: &mut String, report: &Report, st: Style) {
    if let Some(c) = &report.closure {
        out.push_str(&st.heading("Closure"));
        out.push('\n');
        out.push_str(&format!(
            "{}: {} paths, {}\n\n",
            c.requested.join(" "),
            thousands(c.paths),
            bytes(c.nar_bytes)
        ));
    }
    if report.coverage.is_empty() {
        return;
    }
    out.push_str(&st.heading("Cache coverage of the closure"));
    out.push('\n');
    if st.narrow() {
        for c in &report.coverage {
            let (paths, nar, rate) = coverage_cells(c);
            out.push_str(&format!(
                "{}{}\n   {rate}: {paths} paths, {nar}\n",
                c.cache,
                c.priority
                    .map(|p| format!(" (priority {p})"))
                    .unwrap_or_default()
            ));
            let sig = signatures_cell(c);
            if !sig.is_empty() {
                out.push_str(&format!("   signatures: {sig}\n"));
            }
            let note = coverage_note(c);
            if !note.is_empty() {
                out.push_str(&format!("   {note}\n"));
            }
        }
        out.push('\n');
    } else {
        let mut t = st.table();
        t.set_header(vec![
            "cache",
            "priority",
            "paths",
            "NAR bytes",
            "hit rate (bytes)",
            "signatures",
            "note",
        ]);
        for c in &report.coverage {
            let (paths, nar, rate) = coverage_cells(c);
            t.add_row(vec![
                Cell::new(&c.cache),
                right(c.priority.map(|p| p.to_string()).unwrap_or_default()),
                right(paths),
                right(nar),
                right(rate),
                Cell::new(signatures_cell(c)),
                Cell::new(coverage_note(c)),
            ]);
        }
        out.push_str(&t.to_string());
        out.push_str("\n\n");
    }
}

fn diff_table(out: &mut String, d: &super::diff::Diff, st: Style) {
    out.push_str(&st.heading(&format!("Changes: {} → {}", d.old.label, d.new.label)));
    out.push('\n');
    out.push_str(&format!("Closure: {}\n", diff_headline(d)));
    if !d.packages.is_empty() {
        let mut t = st.table();
        t.set_header(vec!["package", "before", "after", "size change"]);
        for [n, o, v, delta] in package_rows(d) {
            t.add_row(vec![Cell::new(n), Cell::new(o), Cell::new(v), right(delta)]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
        if let Some(m) = more(d.packages.len()) {
            out.push_str(&format!("{m}\n"));
        }
    }
    if !d.added.is_empty() {
        out.push_str("Largest additions:\n");
        let mut t = st.table();
        t.set_header(vec!["added path", "NAR size"]);
        let all: Vec<&str> = d.added.iter().map(|e| e.path.as_str()).collect();
        for e in d.added.iter().take(DIFF_ROWS) {
            t.add_row(vec![
                Cell::new(short_path(&e.path, &all)),
                right(bytes(e.nar_size)),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
        if let Some(m) = more(d.added.len()) {
            out.push_str(&format!("{m}\n"));
        }
    }
    out.push_str(&format!(
        "{} removed.\n",
        count(d.removed.len() as u64, "path")
    ));
    for c in &d.coverage {
        out.push_str(&format!("{}\n", hit_rate_change(c, &c.cache)));
    }
    out.push('\n');
}

/// The findings `sections` asks for: the configuration's with `config`, the others with
/// `findings`.
fn findings_table(out: &mut String, report: &Report, sections: Sections, st: Style) {
    let shown: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| {
            if f.area == super::Area::Config {
                sections.has("config")
            } else {
                sections.has("findings")
            }
        })
        .collect();
    out.push_str(&st.heading("Findings"));
    out.push('\n');
    let hidden = report.findings.len() - shown.len();
    if hidden > 0 {
        out.push_str(&format!(
            "{hidden} more not shown here: `--sections {}` shows {}\n",
            if sections.has("config") {
                "findings"
            } else {
                "config"
            },
            if hidden == 1 { "it" } else { "them" }
        ));
    }
    if shown.is_empty() {
        out.push_str("none\n");
    } else if term_width(st.tty).is_some() {
        // Prose in four columns reads badly at any width (and a path in a cell is cut
        // mid-hash): on a terminal, one wrapped block per finding.
        for f in shown {
            let loc = location(f);
            let at = if loc.is_empty() {
                String::new()
            } else {
                format!(" at {loc}")
            };
            out.push_str(&format!(
                "{} {}{at}\n  {}\n  → {}\n",
                f.severity.icon(),
                f.severity.as_str(),
                f.message,
                f.what_to_do
            ));
        }
    } else {
        let mut t = st.table();
        t.set_header(vec!["severity", "where", "finding", "what to do"]);
        for f in shown {
            t.add_row(vec![
                Cell::new(f.severity.as_str()),
                Cell::new(location(f)),
                Cell::new(&f.message),
                Cell::new(&f.what_to_do),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    if sections.has("config") && report.config.checked && report.config.findings.is_empty() {
        out.push_str("Configuration: no problems in the files Nix reads.\n");
    }
    out.push('\n');
}

fn recommendations_table(out: &mut String, recommendations: &[super::Recommendation], st: Style) {
    out.push_str(&st.heading("Recommendations"));
    out.push('\n');
    for (i, r) in recommendations.iter().enumerate() {
        out.push_str(&format!("{}. {}\n", i + 1, r.message));
        if let Some(c) = &r.command {
            out.push_str(&format!("   $ {c}\n"));
        }
    }
}

/// Rows of the diff tables shown in the table and Markdown (the JSON has all).
const DIFF_ROWS: usize = 15;

/// `+1.2 MiB` / `-300 B`.
fn signed_bytes(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    format!("{sign}{}", bytes(n.unsigned_abs()))
}

/// `1 path`, `2 paths`.
fn count(n: u64, what: &str) -> String {
    format!("{} {what}{}", thousands(n), if n == 1 { "" } else { "s" })
}

fn signed(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    format!("{sign}{}", thousands(n.unsigned_abs()))
}

/// "1,234 paths, 1.2 GiB → 1,240 paths, 1.3 GiB (+6 paths, +12.3 MiB)".
fn diff_headline(d: &super::diff::Diff) -> String {
    format!(
        "{}, {} → {}, {} ({} path{}, {})",
        count(d.old.paths, "path"),
        bytes(d.old.nar_bytes),
        count(d.new.paths, "path"),
        bytes(d.new.nar_bytes),
        signed(d.delta_paths),
        if d.delta_paths.abs() == 1 { "" } else { "s" },
        signed_bytes(d.delta_nar_bytes)
    )
}

/// "Hit rate of CACHE: 80.0% → 60.5% (-19.5 points)", the cache shown as given.
fn hit_rate_change(c: &super::diff::CoverageDelta, cache: &str) -> String {
    format!(
        "Hit rate of {cache}: {:.1}% → {:.1}% ({:+.1} points)",
        c.old_hit_rate_bytes, c.new_hit_rate_bytes, c.delta
    )
}

fn versions(v: &[String]) -> String {
    if v.is_empty() {
        "—".to_owned()
    } else {
        v.iter()
            .map(|x| {
                if x.is_empty() {
                    "(no version)"
                } else {
                    x.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Rows `(name, old, new, delta)` of the package changes shown.
fn package_rows(d: &super::diff::Diff) -> Vec<[String; 4]> {
    d.packages
        .iter()
        .take(DIFF_ROWS)
        .map(|p| {
            [
                p.name.clone(),
                versions(&p.old),
                versions(&p.new),
                signed_bytes(p.delta_nar_bytes),
            ]
        })
        .collect()
}

fn more(total: usize) -> Option<String> {
    (total > DIFF_ROWS).then(|| {
        format!(
            "… and {} more (all of them in --format json)",
            total - DIFF_ROWS
        )
    })
}

/// "#1 and #3 have 1.2 GiB in common" for the listed pair of roots that shares most.
fn most_shared(closures: &[super::ClosureEntry]) -> Option<String> {
    let (a, w) = closures
        .iter()
        .enumerate()
        .filter_map(|(a, e)| Some((a, e.shares_most_with.as_ref()?)))
        .max_by(|x, y| {
            x.1.nar_bytes
                .cmp(&y.1.nar_bytes)
                .then_with(|| y.0.cmp(&x.0))
        })?;
    let b = closures.iter().position(|e| e.path == w.path)?;
    Some(format!(
        "Most shared: #{} and #{} have {} of their closures in common (deleting one alone frees only what the other does not keep).",
        a.min(b) + 1,
        a.max(b) + 1,
        bytes(w.nar_bytes)
    ))
}

/// What deleting a root alone frees: "1.2 MiB (14 paths)", "-" when unknown.
fn freed(c: &super::ClosureEntry) -> String {
    match c.freed_if_deleted {
        Some(f) => format!("{} ({})", bytes(f.nar_bytes), count(f.paths, "path")),
        None => "-".to_owned(),
    }
}

/// Paths, NAR bytes and hit rate of a coverage row: "not measured" when the cache could
/// not be asked, never 0%.
fn coverage_cells(c: &super::Coverage) -> (String, String, String) {
    match (
        c.measured,
        c.paths_present,
        c.nar_bytes_present,
        c.hit_rate_bytes,
    ) {
        (true, Some(p), Some(b), Some(r)) => (
            format!("{} / {}", thousands(p), thousands(c.paths_total)),
            format!("{} / {}", bytes(b), bytes(c.nar_bytes_total)),
            format!("{}{r:.1}%", if c.errors > 0 { "≥ " } else { "" }),
        ),
        _ => (
            format!("? / {}", thousands(c.paths_total)),
            format!("? / {}", bytes(c.nar_bytes_total)),
            "not measured".to_owned(),
        ),
    }
}

fn coverage_note(c: &super::Coverage) -> String {
    let mut note = match &c.error {
        Some(e) if !c.measured => format!("not measured: {e}"),
        Some(e) => e.clone(),
        None if c.errors > 0 => format!("{} queries failed (lower bound)", c.errors),
        None => String::new(),
    };
    if let Some(i) = c.incomplete.as_ref().filter(|i| i.paths > 0) {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "{} path{} without all references",
            thousands(i.paths),
            if i.paths == 1 { "" } else { "s" }
        ));
    }
    note
}

/// Nix's verdict on a cache's signatures: "trusted", "4 untrusted (other-1)", ...
fn signatures_cell(c: &super::Coverage) -> String {
    let Some(s) = &c.signatures else {
        return String::new();
    };
    if s.checked == 0 {
        return "-".to_owned();
    }
    if s.trusted == s.checked {
        return format!("trusted ({})", thousands(s.checked));
    }
    let mut parts = Vec::new();
    if s.trusted > 0 {
        parts.push(format!("{} trusted", thousands(s.trusted)));
    }
    if s.untrusted > 0 {
        let names: Vec<&str> = s
            .untrusted_keys
            .iter()
            .map(String::as_str)
            .chain(s.mismatched_keys.iter().map(|k| k.as_str()))
            .collect();
        let mismatch = if s.mismatched_keys.is_empty() {
            ""
        } else {
            ", key differs"
        };
        parts.push(format!(
            "{} untrusted ({}{mismatch})",
            thousands(s.untrusted),
            names.join(", ")
        ));
    }
    if s.unsigned > 0 {
        parts.push(format!("{} unsigned", thousands(s.unsigned)));
    }
    if s.content_addressed > 0 {
        parts.push(format!(
            "{} content-addressed",
            thousands(s.content_addressed)
        ));
    }
    let mut out = parts.join(", ");
    if !s.required {
        out.push_str(" (not required)");
    }
    out
}

/// Escapes text for a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The parts of the table and Markdown reports `--sections` chooses from (the JSON
/// always has everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections(u16);

impl Sections {
    /// Every section, in the order `--sections` lists them.
    const NAMES: [&'static str; 9] = [
        "coverage",
        "config",
        "diff",
        "findings",
        "recommendations",
        "store",
        "paths",
        "closures",
        "gc",
    ];

    const ALL: Sections = Sections((1 << Self::NAMES.len()) - 1);

    /// `coverage,config,...` (any order); an unknown name is an error listing the names.
    pub fn parse(list: &str) -> Result<Sections, String> {
        let mut bits = 0u16;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let k = if name == "all" {
                bits |= Self::ALL.0;
                continue;
            } else {
                Self::NAMES.iter().position(|n| *n == name).ok_or_else(|| {
                    format!(
                        "`{name}` is not a section: choose from all, {}",
                        Self::NAMES.join(", ")
                    )
                })?
            };
            bits |= 1 << k;
        }
        if bits == 0 {
            return Err(format!(
                "name at least one section: {}",
                Self::NAMES.join(", ")
            ));
        }
        Ok(Sections(bits))
    }

    fn has(self, name: &str) -> bool {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|k| self.0 & (1 << k) != 0)
    }
}

impl Default for Sections {
    fn default() -> Self {
        Self::ALL
    }
}

/// The one line a CI summary leads with: the closure's best coverage and what is wrong.
fn verdict(report: &Report) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &report.closure {
        // A cache whose signatures Nix refuses is no source, however much it holds: the
        // best is the one Nix would use, then the higher hit rate, then the first listed.
        let usable = |c: &&super::report::Coverage| {
            c.signatures.as_ref().is_none_or(|s| {
                !s.required || s.checked == 0 || s.trusted + s.content_addressed > 0
            })
        };
        let best = report
            .coverage
            .iter()
            .filter(|c| c.measured)
            .rev()
            .max_by(|a, b| {
                (usable(a), a.hit_rate_bytes.unwrap_or(0.0))
                    .partial_cmp(&(usable(b), b.hit_rate_bytes.unwrap_or(0.0)))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let unmeasured = report.coverage.iter().filter(|c| !c.measured).count();
        parts.push(match best {
            Some(b) => format!(
                "the closure ({} paths, {}) is {:.1}% in {}{}",
                thousands(c.paths),
                bytes(c.nar_bytes),
                b.hit_rate_bytes.unwrap_or(0.0),
                md_cell(&b.cache),
                if usable(&b) {
                    ""
                } else {
                    ", but Nix ignores its paths: no trusted key signs them"
                }
            ),
            None if report.coverage.is_empty() => format!(
                "the closure has {} paths, {}; no cache to measure",
                thousands(c.paths),
                bytes(c.nar_bytes)
            ),
            None => "no cache could be measured".to_owned(),
        });
        if unmeasured > 0 && best.is_some() {
            parts.push(format!(
                "{unmeasured} cache{} not measured",
                if unmeasured == 1 { "" } else { "s" }
            ));
        }
    }
    if let Some(d) = &report.diff {
        parts.push(format!(
            "{} path{}, {} against {}",
            signed(d.delta_paths),
            if d.delta_paths.abs() == 1 { "" } else { "s" },
            signed_bytes(d.delta_nar_bytes),
            md_cell(&d.old.label)
        ));
    }
    let (e, w) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
    );
    let config_problems = report
        .config
        .findings
        .iter()
        .filter(|f| f.severity <= Severity::Warning)
        .count();
    if report.config.checked {
        parts.push(if config_problems == 0 {
            "configuration sound".to_owned()
        } else {
            format!(
                "{config_problems} configuration problem{}",
                if config_problems == 1 { "" } else { "s" }
            )
        });
    }
    if e + w > config_problems {
        let n = e + w - config_problems;
        parts.push(format!(
            "{n} other problem{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(gc) = &report.gc {
        if gc.dead_nar_bytes > 0 {
            parts.push(format!("{} of garbage", bytes(gc.dead_nar_bytes)));
        }
    }
    let mut line = parts.join("; ");
    if let Some(first) = line.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    line.push('.');
    line
}

/// A Mermaid pie of where the store's bytes go: what deleting each listed root frees
/// (the first five), what several roots keep, garbage. Without GC roots: `.drv`,
/// `-source`, the rest.
fn mermaid_pie(report: &Report) -> Option<String> {
    let s = &report.store;
    if s.nar_bytes == 0 {
        return None;
    }
    // A root's link name may hold anything: nothing that ends the fence or the label.
    let label = |t: &str| {
        t.chars()
            .map(|c| {
                if c.is_control() || "\"`;:#".contains(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect::<String>()
    };
    // A unit the slices read well in: KiB under 10 MiB, GiB from 10 GiB.
    let (unit, div) = match s.nar_bytes {
        n if n < 10 << 20 => ("KiB", 1024.0),
        n if n < 10 << 30 => ("MiB", 1_048_576.0),
        _ => ("GiB", 1_073_741_824.0),
    };
    let amount = |b: u64| format!("{:.2}", b as f64 / div);
    let mut slices: Vec<(String, u64)> = Vec::new();
    match &report.gc {
        Some(gc) => {
            let mut alone = 0u64;
            for c in report.largest_closures.iter().take(5) {
                let freed = c.freed_if_deleted.map_or(0, |f| f.nar_bytes);
                if freed > 0 {
                    alone += freed;
                    let name = crate::storepath::name(&c.path).unwrap_or(&c.path);
                    let link = c.root.rsplit('/').next().unwrap_or(&c.root);
                    slices.push((format!("only {link} ({name})"), freed));
                }
            }
            let live = s.nar_bytes.saturating_sub(gc.dead_nar_bytes);
            slices.push((
                "kept by several or other roots".to_owned(),
                live.saturating_sub(alone),
            ));
            slices.push(("garbage".to_owned(), gc.dead_nar_bytes));
        }
        None => {
            let rest = s.nar_bytes - s.drv.nar_bytes - s.source_paths.nar_bytes;
            slices.push((".drv files".to_owned(), s.drv.nar_bytes));
            slices.push(("-source paths".to_owned(), s.source_paths.nar_bytes));
            slices.push(("other paths".to_owned(), rest));
        }
    }
    slices.retain(|(_, b)| *b > 0);
    // One slice (it is all one root's, say) is a full circle that says nothing.
    if slices.len() < 2 {
        return None;
    }
    let mut out = format!("```mermaid\npie showData title Where the store's bytes go ({unit})\n");
    for (name, b) in &slices {
        out.push_str(&format!("    \"{}\" : {}\n", label(name), amount(*b)));
    }
    out.push_str("```\n\n");
    Some(out)
}

/// Markdown job summary (secrets hidden): a headline and a one-line verdict, then what
/// matters on CI — coverage, configuration, changes, findings, recommendations — and the
/// store, largest paths and closures and garbage collapsed in `<details>`.
pub fn markdown_sections(report: &Report, sections: Sections) -> String {
    super::hide_secrets(&markdown_unredacted(report, sections), &report.secrets)
}

fn markdown_unredacted(report: &Report, sections: Sections) -> String {
    let mut out = String::new();
    let (ok, text) = headline(report);
    out.push_str(&format!(
        "## {} Nix store and cache report: {text}\n\n",
        if ok { "✅" } else { "⚠️" }
    ));
    out.push_str(&format!("**{}**\n\n", verdict(report)));
    out.push_str(&format!(
        "Source: {}\n\n",
        md_cell(&report.source.describe())
    ));

    if sections.has("coverage") {
        if let Some(c) = &report.closure {
            coverage_md(&mut out, report, c);
        }
    }
    if sections.has("config") {
        out.push_str("### Configuration\n\n");
        if !report.config.checked {
            out.push_str("Not checked.\n\n");
        } else if report.config.findings.is_empty() {
            out.push_str("✅ No problems in the files Nix reads.\n\n");
        } else {
            findings_md(&mut out, &report.config.findings);
        }
    }
    if sections.has("diff") {
        if let Some(d) = &report.diff {
            diff_md(&mut out, d);
        }
    }
    let others: Vec<Finding> = report
        .findings
        .iter()
        .filter(|f| f.area != super::Area::Config)
        .cloned()
        .collect();
    if sections.has("findings") && !others.is_empty() {
        out.push_str("### Other findings\n\n");
        findings_md(&mut out, &others);
    }
    if sections.has("recommendations") && !report.recommendations.is_empty() {
        out.push_str("### Recommendations\n\n");
        for (i, r) in report.recommendations.iter().enumerate() {
            out.push_str(&format!("{}. {}", i + 1, r.message));
            if let Some(c) = &r.command {
                out.push_str(&format!(" Run `{c}`."));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    if sections.has("store") {
        store_md(&mut out, report);
    }
    if sections.has("paths") && !report.largest_paths.is_empty() {
        out.push_str(&format!(
            "<details><summary><b>Largest paths</b>: the biggest is {}</summary>\n\n| # | Path | NAR size |\n|---:|---|---:|\n",
            bytes(report.largest_paths[0].nar_size)
        ));
        for (i, p) in report.largest_paths.iter().enumerate() {
            out.push_str(&format!(
                "| {} | `{}` | {} |\n",
                i + 1,
                p.path,
                bytes(p.nar_size)
            ));
        }
        out.push_str("\n</details>\n\n");
    }
    if sections.has("closures") && !report.largest_closures.is_empty() {
        out.push_str(&format!(
            "<details><summary><b>Largest closures</b>: deleting {} frees {}</summary>\n\n| # | Root (delete to release) | Store path | Paths | Closure size | Deleting it frees |\n|---:|---|---|---:|---:|---:|\n",
            md_cell(&report.largest_closures[0].root),
            freed(&report.largest_closures[0])
        ));
        for (i, c) in report.largest_closures.iter().enumerate() {
            out.push_str(&format!(
                "| {} | `{}` | `{}` | {} | {} | {} |\n",
                i + 1,
                md_cell(&c.root),
                c.path,
                thousands(c.closure_paths),
                bytes(c.closure_size),
                freed(c)
            ));
        }
        out.push('\n');
        if let Some(line) = most_shared(&report.largest_closures) {
            out.push_str(&line);
            out.push_str("\n\n");
        }
        out.push_str("</details>\n\n");
    }
    if sections.has("gc") {
        if let Some(gc) = &report.gc {
            gc_md(&mut out, gc);
        }
    }
    out
}

fn coverage_md(out: &mut String, report: &Report, c: &super::ClosureSection) {
    out.push_str("### Cache coverage\n\n");
    out.push_str(&format!(
        "Closure of {}: {} paths, {}.\n\n",
        c.requested
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
        thousands(c.paths),
        bytes(c.nar_bytes)
    ));
    if report.coverage.is_empty() {
        return;
    }
    out.push_str("| Cache | Priority | Paths present | NAR bytes present | Hit rate | Signatures | Note |\n|---|---:|---:|---:|---:|---|---|\n");
    for cv in &report.coverage {
        let (paths, nar, rate) = coverage_cells(cv);
        let rate = if cv.measured {
            format!("**{rate}**")
        } else {
            format!("⚠️ {rate}")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            md_cell(&cv.cache),
            cv.priority.map(|p| p.to_string()).unwrap_or_default(),
            paths,
            nar,
            rate,
            md_cell(&signatures_cell(cv)),
            md_cell(&coverage_note(cv))
        ));
    }
    out.push('\n');
}

fn store_md(out: &mut String, report: &Report) {
    let s = &report.store;
    out.push_str(&format!(
        "<details><summary><b>Store</b>: {} paths, {}</summary>\n\n",
        thousands(s.paths),
        bytes(s.nar_bytes)
    ));
    out.push_str("| | Paths | NAR size | Share of NAR |\n|---|---:|---:|---:|\n");
    out.push_str(&format!(
        "| All valid paths | {} | {} | 100% |\n",
        thousands(s.paths),
        bytes(s.nar_bytes)
    ));
    out.push_str(&format!(
        "| `.drv` files | {} | {} | {} |\n",
        thousands(s.drv.paths),
        bytes(s.drv.nar_bytes),
        pct(s.drv.nar_bytes, s.nar_bytes)
    ));
    out.push_str(&format!(
        "| `-source` paths | {} | {} | {} |\n\n",
        thousands(s.source_paths.paths),
        bytes(s.source_paths.nar_bytes),
        pct(s.source_paths.nar_bytes, s.nar_bytes)
    ));
    if let Some(fs) = &s.filesystem {
        out.push_str(&format!(
            "Filesystem `{}`: {} free of {}.\n\n",
            fs.mount_point.display(),
            bytes(fs.available_bytes),
            bytes(fs.total_bytes)
        ));
    }
    if let Some(pie) = mermaid_pie(report) {
        out.push_str(&pie);
    }
    out.push_str("</details>\n\n");
}

fn gc_md(out: &mut String, gc: &super::GcSection) {
    let bound = if gc.dead_is_upper_bound {
        "at most "
    } else {
        ""
    };
    out.push_str(&format!(
        "<details><summary><b>Garbage</b>: {bound}{}, {}</summary>\n\n",
        count(gc.dead_paths, "path"),
        bytes(gc.dead_nar_bytes)
    ));
    out.push_str(&format!(
        "**{}{} dead paths ({})** are not reachable from the {} ({} live paths).\n\n",
        if gc.dead_is_upper_bound {
            "At most "
        } else {
            ""
        },
        thousands(gc.dead_paths),
        bytes(gc.dead_nar_bytes),
        count(gc.roots, "GC root"),
        thousands(gc.live_paths)
    ));
    if gc.dead_is_upper_bound {
        out.push_str(&format!(
            "⚠️ **Upper bound**: {} GC-root location(s) could not be read, and paths only they keep are counted as dead: {}.\n\n",
            gc.unreadable_roots.len(),
            gc.unreadable_roots
                .iter()
                .map(|u| format!("`{}`", md_cell(&u.path.display().to_string())))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let quoted: Vec<String> = gc.caveats.iter().map(|c| format!("> {c}\n")).collect();
    out.push_str(&quoted.join(">\n"));
    out.push_str("\n</details>\n\n");
}

fn diff_md(out: &mut String, d: &super::diff::Diff) {
    out.push_str(&format!(
        "### Changes: {} → {}\n\n**Closure:** {}.\n\n",
        md_cell(&d.old.label),
        md_cell(&d.new.label),
        diff_headline(d)
    ));
    if !d.packages.is_empty() {
        out.push_str("| Package | Before | After | Size change |\n|---|---|---|---:|\n");
        for [n, o, v, delta] in package_rows(d) {
            out.push_str(&format!(
                "| {} | {} | {} | {delta} |\n",
                md_cell(&n),
                md_cell(&o),
                md_cell(&v)
            ));
        }
        out.push('\n');
        if let Some(m) = more(d.packages.len()) {
            out.push_str(&format!("{m}\n\n"));
        }
    }
    if !d.added.is_empty() {
        out.push_str("| Largest additions | NAR size |\n|---|---:|\n");
        for e in d.added.iter().take(DIFF_ROWS) {
            out.push_str(&format!("| `{}` | {} |\n", e.path, bytes(e.nar_size)));
        }
        out.push('\n');
        if let Some(m) = more(d.added.len()) {
            out.push_str(&format!("{m}\n\n"));
        }
    }
    out.push_str(&format!(
        "{} removed.\n\n",
        count(d.removed.len() as u64, "path")
    ));
    for c in &d.coverage {
        out.push_str(&format!("- {}\n", hit_rate_change(c, &md_cell(&c.cache))));
    }
    if !d.coverage.is_empty() {
        out.push('\n');
    }
}

fn findings_md(out: &mut String, findings: &[Finding]) {
    for f in findings {
        let loc = location(f);
        out.push_str(&format!(
            "#### {} {}",
            f.severity.icon(),
            f.severity.as_str()
        ));
        if !loc.is_empty() {
            out.push_str(&format!(": `{}`", md_cell(&loc)));
        }
        out.push_str("\n\n");
        out.push_str(&f.message);
        out.push_str("\n\n<details><summary>What to do</summary>\n\n");
        out.push_str(&f.what_to_do);
        out.push_str("\n\n</details>\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(200000), "200,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn prose_paths_shortened_but_commands_kept_whole() {
        let a = "/nix/store/gc5a6wfnrzjh7vx8754p2nfz14d5pz8m-hello-2.12";
        let b = "/nix/store/micp0hq1ivjbl3wjh9a8yvd1annlswfx-hello-2.12";
        let c = "/nix/store/0c5a6wfnrzjh7vx8754p2nfz14d5pz8m-app-1.0";
        let text = format!("Changes:\n  {a} → {b}\nRoot {c}: 1 KiB\n   $ nix-store --delete {c}\n");
        let short = short_prose_paths(&text, "/nix/store");
        assert_eq!(
            short,
            format!(
                "Changes:\n  hello-2.12 (gc5a6wfn) → hello-2.12 (micp0hq1)\nRoot app-1.0: 1 KiB\n   $ nix-store --delete {c}\n"
            )
        );
    }
}
