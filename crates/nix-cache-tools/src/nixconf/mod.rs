//! nix.conf as Nix reads it: a lossless per-file model, the stack of files Nix loads,
//! and the settings in force with the file and line each value came from.
//!
//! # One file: [`NixConf`]
//!
//! [`NixConf::parse`] never fails and [`NixConf::render`] (also `to_string()`) gives the
//! input back byte for byte: CRLF, tabs, comments, includes, lines Nix rejects, and
//! whether the file ends with a newline all survive. Each [`Line`] has a 1-based
//! `number`, its `content` (without the line ending), its `eol` (`"\n"`, `"\r\n"` or
//! `""`) and a [`LineKind`] decided exactly as Nix's parser does:
//!
//! - everything from the first `#` is a comment, even inside a value;
//! - the rest is split on space, tab, CR, LF;
//! - `include PATH` / `!include PATH` (exactly one path) are [`LineKind::Include`];
//! - otherwise the second word must be exactly `=`: `a=b`, `a =b`, `a b` are
//!   [`LineKind::Invalid`] with an [`Invalid`] reason that says what to write instead;
//! - a [`Setting`] keeps the key as written, the alias-resolved `name` (`binary-caches`
//!   → `substituters`, `binary-cache-public-keys` → `trusted-public-keys`,
//!   `trusted-binary-caches` → `trusted-substituters`), `is_extra` and the value tokens.
//!
//! Edits ([`NixConf::append_line`], [`NixConf::append_values`],
//! [`NixConf::remove_values`], [`NixConf::remove_line`], [`NixConf::set_line`]) change
//! only the lines they name, keep the file's line ending style, and are inverses of each
//! other byte for byte (append then remove restores the file, final-newline state
//! included).
//!
//! # The stack: [`Env`], [`load`], [`Layers`]
//!
//! [`Env`] is a snapshot of `NIX_CONF_DIR`, `NIX_USER_CONF_FILES`, `XDG_CONFIG_HOME`,
//! `XDG_CONFIG_DIRS`, `HOME`, `NIX_CONFIG`, `NIX_CONFIG_HOME` ([`Env::from_process`] or
//! built by hand in tests). [`load`] reads every file Nix reads, each as a
//! [`ConfFile`](layers::ConfFile) with its path, [`LayerKind`] (system, user, XDG_CONFIG_DIRS,
//! NIX_USER_CONF_FILES, NIX_CONFIG, include), whether it exists, and its parsed
//! [`NixConf`]. Includes are resolved relative to the including file and loaded in
//! place; a missing `include` is a [`LoadError::MissingInclude`] (a missing `!include`
//! is fine), lines Nix rejects are [`LoadError::InvalidLine`], cycles are reported.
//!
//! # Settings in force
//!
//! [`Layers::assignments`] lists every `key = value` line in Nix's application order
//! (system file, then user files from lowest to highest priority — the FIRST entry of
//! `NIX_USER_CONF_FILES` wins — then `NIX_CONFIG`; an included file's lines at its
//! include line), each with file, line, alias-resolved name, `is_extra` and values.
//! [`Layers::effective`] applies Nix's rules (plain set replaces, `extra-` appends, later
//! wins, defaults `substituters = https://cache.nixos.org/`, `trusted-public-keys =
//! cache.nixos.org-1:…`, `trusted-users = root`; duplicates kept, as Nix keeps them) and
//! returns each value with its file and line ([`Sourced`]; `file: None` for a default).
//! [`effective_of`] does the same over a chosen subset of assignments (e.g. only the
//! system layers the daemon reads); [`Layers::effective_scalar`] gives the last plain
//! value of a scalar setting (`require-sigs`, `netrc-file`).
//!
//! Empty variables are taken the way Nix takes them, not the XDG spec's way: an empty
//! `XDG_CONFIG_HOME` makes the user file `/nix/nix.conf`, an empty `XDG_CONFIG_DIRS`
//! means no system XDG directories, an empty `NIX_USER_CONF_FILES` means no user file.
//! `tests/setup_cache.rs` checks the model against `nix show-config` on real layers.
//!
//! ```
//! use nix_cache_tools::nixconf::NixConf;
//! let text = "substituters = https://a/ # ours\r\nextra-trusted-public-keys=x\n!include more.conf";
//! let conf = NixConf::parse(text);
//! assert_eq!(conf.render(), text);
//! assert_eq!(conf.lines()[0].setting().unwrap().values, ["https://a/"]);
//! assert!(conf.invalid_lines().count() == 1);
//! ```

pub(crate) mod daemon;
mod doc;
mod effective;
mod layers;

pub(crate) use doc::canonical_name;
pub use doc::{Invalid, Line, LineKind, NixConf, Setting};
pub use effective::Sourced;
pub(crate) use effective::{Assignment, effective_of};
pub(crate) use layers::restart_command;
pub use layers::{Env, Layers, load};
pub(crate) use layers::{LayerKind, LoadError, load_alone};

#[cfg(test)]
mod tests;
