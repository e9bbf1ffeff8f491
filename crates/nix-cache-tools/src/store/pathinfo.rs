//! The fallback source: `nix path-info --all --json` (both JSON shapes, Nix 2.8 →
//! today), for when the database cannot be opened (a non-root user before Nix 2.22, a
//! remote store). Slower, but the numbers are the same ones Nix reports.

use super::graph::{Graph, GraphBuilder};
use crate::nixcli::{Nix, NixError};

/// Reads the whole store through `nix path-info --all --json`. Returns the graph and the
/// command line used.
pub(crate) fn read_graph(nix: &Nix, store_dir: &str) -> Result<(Graph, String), NixError> {
    let cmd = nix.path_info_cmd(&["--all".to_owned()], false, false);
    let out = nix.runner().run(&cmd)?;
    let infos = crate::nixcli::parse_path_info(&out.stdout_str(), store_dir).map_err(|reason| {
        NixError::Parse {
            cmdline: cmd.display(),
            reason,
        }
    })?;
    let valid: Vec<_> = infos.into_iter().filter(|i| i.valid).collect();
    let nrefs = valid.iter().map(|i| i.references.len()).sum();
    let mut b = GraphBuilder::with_capacity(valid.len(), nrefs);
    for i in &valid {
        b.push_path(&i.path, i.nar_size);
    }
    let index: std::collections::HashMap<&str, u32> = valid
        .iter()
        .enumerate()
        .map(|(k, i)| (i.path.as_str(), k as u32))
        .collect();
    let mut facts = Vec::new();
    for (k, i) in valid.iter().enumerate() {
        for r in &i.references {
            if let Some(&ri) = index.get(r.as_str()) {
                b.push_ref(k as u32, ri);
            }
        }
        // path-info has no DerivationOutputs; the deriver field stands in for it.
        if let Some(&d) = i.deriver.as_deref().and_then(|d| index.get(d)) {
            facts.push((d, k as u32));
        }
    }
    for (d, o) in facts {
        b.push_drv_output(d, o, true);
    }
    Ok((b.finish(), cmd.display()))
}
