//! The files Nix reads, in Nix's order, with includes expanded.

use super::doc::{LineKind, NixConf};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variables that decide which configuration Nix reads. Built from the
/// process ([`Env::from_process`]) or explicitly for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `NIX_CONF_DIR`: where the system nix.conf is (`/etc/nix` when unset or empty).
    pub nix_conf_dir: Option<PathBuf>,
    /// `NIX_USER_CONF_FILES`: `:`-separated user files that replace the XDG ones, the
    /// first with the highest priority; set but empty means no user file.
    pub nix_user_conf_files: Option<OsString>,
    /// `XDG_CONFIG_HOME` (`$HOME/.config` when unset); set but empty makes the user file
    /// `/nix/nix.conf`, as in Nix.
    pub xdg_config_home: Option<PathBuf>,
    /// `XDG_CONFIG_DIRS` (`/etc/xdg` when unset); set but empty means none.
    pub xdg_config_dirs: Option<OsString>,
    /// `HOME` ([`Env::from_process`] falls back to the password database's entry).
    pub home: Option<PathBuf>,
    /// `NIX_CONFIG`: nix.conf text applied after every file.
    pub nix_config: Option<String>,
    /// Honoured by Nix ≥ 2.25 only; see [`Env::for_nix_version`].
    pub nix_config_home: Option<PathBuf>,
    /// Directory relative `include`s in `NIX_CONFIG` resolve against (Nix uses the
    /// current directory).
    pub cwd: Option<PathBuf>,
}

/// `dir + "/" + rest` as Nix builds it (an empty `dir` gives `/rest`).
fn concat(dir: &Path, rest: &str) -> PathBuf {
    if dir.as_os_str().is_empty() {
        Path::new("/").join(rest)
    } else {
        dir.join(rest)
    }
}

/// Nix's compiled-in default for `NIX_CONF_DIR`.
pub(crate) const DEFAULT_NIX_CONF_DIR: &str = "/etc/nix";

fn non_empty_path(v: Option<OsString>) -> Option<PathBuf> {
    v.filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Env {
    /// A snapshot of the current process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k);
        Env {
            nix_conf_dir: non_empty_path(var("NIX_CONF_DIR")),
            nix_user_conf_files: var("NIX_USER_CONF_FILES"),
            // Set-but-empty is kept: Nix uses the empty string as is (an empty
            // XDG_CONFIG_HOME makes it read `/nix/nix.conf`, an empty XDG_CONFIG_DIRS
            // means no system XDG directories), unlike the XDG spec.
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_config_dirs: var("XDG_CONFIG_DIRS"),
            home: var("HOME").map(PathBuf::from).or_else(dirs::home_dir),
            nix_config: std::env::var("NIX_CONFIG").ok(),
            nix_config_home: non_empty_path(var("NIX_CONFIG_HOME")),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// Drops what the given Nix version does not read (`NIX_CONFIG_HOME` before 2.25).
    pub(crate) fn for_nix_version(mut self, v: crate::nixcli::NixVersion) -> Self {
        if !v.at_least(2, 25) {
            self.nix_config_home = None;
        }
        self
    }

    /// The same environment as the nix-daemon sees it: the system file (and what it
    /// includes) only; no user files, no `NIX_CONFIG`.
    pub(crate) fn system_only(&self) -> Self {
        Env {
            nix_user_conf_files: Some(OsString::new()),
            nix_config: None,
            nix_config_home: None,
            ..self.clone()
        }
    }

    /// `$NIX_CONF_DIR` or `/etc/nix`.
    pub(crate) fn conf_dir(&self) -> PathBuf {
        self.nix_conf_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_NIX_CONF_DIR))
    }

    /// `$NIX_CONF_DIR/nix.conf`.
    pub(crate) fn system_file(&self) -> PathBuf {
        self.conf_dir().join("nix.conf")
    }

    /// `$XDG_CONFIG_HOME` or `$HOME/.config` (also on macOS). Nix joins them as strings:
    /// an empty `XDG_CONFIG_HOME` gives `/nix/nix.conf` as the user file.
    pub(crate) fn config_home(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| concat(h, ".config")))
    }

    /// Set but empty: Nix then reads `/nix/nix.conf`, surely not what the user meant.
    pub(crate) fn xdg_config_home_is_empty(&self) -> bool {
        self.nix_user_conf_files.is_none()
            && self.nix_config_home.is_none()
            && self
                .xdg_config_home
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty())
    }

    /// The user files in priority order, FIRST = highest priority (Nix applies them in
    /// reverse): `NIX_USER_CONF_FILES` entries when set, else
    /// `$XDG_CONFIG_HOME/nix/nix.conf` then `$XDG_CONFIG_DIRS/*/nix/nix.conf`.
    pub(crate) fn user_files(&self) -> Vec<(PathBuf, LayerKind)> {
        if let Some(list) = &self.nix_user_conf_files {
            return list
                .to_string_lossy()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(|s| (PathBuf::from(s), LayerKind::UserConfFiles))
                .collect();
        }
        let mut out = Vec::new();
        if let Some(d) = &self.nix_config_home {
            out.push((d.join("nix.conf"), LayerKind::User));
        } else if let Some(h) = self.config_home() {
            out.push((concat(&h, "nix/nix.conf"), LayerKind::User));
        }
        let dirs = self
            .xdg_config_dirs
            .clone()
            .unwrap_or_else(|| OsString::from("/etc/xdg"));
        for d in dirs.to_string_lossy().split(':').filter(|s| !s.is_empty()) {
            out.push((Path::new(d).join("nix/nix.conf"), LayerKind::XdgConfigDirs));
        }
        out
    }

    /// The user file `setup-cache` edits by default: the highest-priority user file.
    pub(crate) fn default_user_file(&self) -> Option<PathBuf> {
        self.user_files().into_iter().next().map(|(p, _)| p)
    }
}

/// Where a file in the stack comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LayerKind {
    /// `$NIX_CONF_DIR/nix.conf`.
    System,
    /// `$XDG_CONFIG_HOME/nix/nix.conf` (or `$NIX_CONFIG_HOME/nix.conf`).
    User,
    /// `$XDG_CONFIG_DIRS/*/nix/nix.conf`.
    XdgConfigDirs,
    /// An entry of `NIX_USER_CONF_FILES`.
    UserConfFiles,
    /// The `NIX_CONFIG` environment variable.
    EnvVar,
    /// Pulled in by an `include` / `!include` line of another file.
    Include,
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayerKind::System => "system",
            LayerKind::User => "user",
            LayerKind::XdgConfigDirs => "XDG_CONFIG_DIRS",
            LayerKind::UserConfFiles => "NIX_USER_CONF_FILES",
            LayerKind::EnvVar => "NIX_CONFIG",
            LayerKind::Include => "include",
        })
    }
}

/// One file of the stack (or the `NIX_CONFIG` text).
#[derive(Debug, Clone)]
pub(crate) struct ConfFile {
    /// The path (for `NIX_CONFIG`: the literal `NIX_CONFIG`).
    pub(crate) path: PathBuf,
    pub(crate) kind: LayerKind,
    /// For includes: index in [`Layers::files`] of the including file, and its line.
    pub(crate) included_from: Option<(usize, usize)>,
    /// `false` for a file that does not exist (Nix skips a missing top-level file and a
    /// missing `!include`; a missing `include` is an error in [`Layers::errors`]).
    pub(crate) exists: bool,
    pub(crate) conf: NixConf,
    /// Include lines of this file: (line number, index of the included file).
    pub(crate) includes: Vec<(usize, usize)>,
}

impl ConfFile {
    /// `path` or `path (included from FILE:LINE)`.
    #[cfg(test)]
    pub(crate) fn describe(&self, layers: &Layers) -> String {
        match self.included_from {
            Some((i, line)) => format!(
                "{} (included from {}:{line})",
                self.path.display(),
                layers.files[i].path.display()
            ),
            None => self.path.display().to_string(),
        }
    }
}

/// Problems found while loading. Nix treats all but unreadable top-level files as fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoadError {
    #[error(
        "{file}:{line}: included file `{target}` does not exist (Nix stops with \"file not found\"): create it, fix the path, or write `!include` to make it optional"
    )]
    MissingInclude {
        file: PathBuf,
        line: usize,
        target: PathBuf,
    },
    #[error(
        "{file}:{line}: include cycle: `{target}` is already being read (Nix would recurse forever)"
    )]
    IncludeCycle {
        file: PathBuf,
        line: usize,
        target: PathBuf,
    },
    #[error("`{file}` cannot be read ({reason}); Nix skips it silently")]
    Unreadable { file: PathBuf, reason: String },
    #[error(
        "`{file}` is {what}, not a regular file: Nix would block or fail reading it; point the setting or include at a regular file"
    )]
    NotRegular { file: PathBuf, what: &'static str },
    #[error("`{file}` cannot be used: {reason}")]
    TooLarge { file: PathBuf, reason: String },
    #[error("`{file}` is not UTF-8 text; nix.conf tools here only handle UTF-8")]
    NotUtf8 { file: PathBuf },
    #[error("{file}:{line}: {reason}")]
    InvalidLine {
        file: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Every file Nix reads, in the order it applies them.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Files in discovery order: each top-level file followed (depth first) by what it
    /// includes. Use [`Layers::assignments`] for application order.
    pub(crate) files: Vec<ConfFile>,
    /// Indexes into `files` of the top-level files in application order (system, user
    /// files from lowest to highest priority, `NIX_CONFIG`).
    pub(crate) roots: Vec<usize>,
    pub(crate) errors: Vec<LoadError>,
}

impl Layers {
    /// Determinate Systems' installer: the system nix.conf is the installer's and includes
    /// `nix.custom.conf`, where other settings go. That file, when the system file
    /// includes it.
    pub(crate) fn determinate_custom_conf(&self) -> Option<&std::path::Path> {
        let &root = self.roots.first()?;
        self.files[root]
            .includes
            .iter()
            .map(|&(_, child)| self.files[child].path.as_path())
            .find(|p| p.file_name().is_some_and(|f| f == "nix.custom.conf"))
    }

    /// The command that makes the running nix-daemon re-read nix.conf on this
    /// installation (the Determinate daemon has its own launchd label on macOS).
    pub(crate) fn daemon_restart_command(&self) -> &'static str {
        restart_command(self.determinate_custom_conf().is_some())
    }
}

/// The command that makes a running nix-daemon re-read nix.conf.
pub fn restart_command(determinate: bool) -> &'static str {
    if cfg!(target_os = "macos") {
        if determinate {
            "sudo launchctl kickstart -k system/systems.determinate.nix-daemon"
        } else {
            "sudo launchctl kickstart -k system/org.nixos.nix-daemon"
        }
    } else {
        "sudo systemctl restart nix-daemon"
    }
}

/// Reads every configuration file Nix would read in `env`, in Nix's order.
pub fn load(env: &Env) -> Layers {
    let mut layers = Layers::default();
    let sys = env.system_file();
    let i = load_file(&mut layers, &sys, LayerKind::System, None, &mut Vec::new());
    layers.roots.push(i);
    for (path, kind) in env.user_files().into_iter().rev() {
        let i = load_file(&mut layers, &path, kind, None, &mut Vec::new());
        layers.roots.push(i);
    }
    if let Some(text) = &env.nix_config {
        let base = env.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
        let i = add_text(
            &mut layers,
            PathBuf::from("NIX_CONFIG"),
            LayerKind::EnvVar,
            None,
            text,
            &base,
            &mut Vec::new(),
        );
        layers.roots.push(i);
    }
    layers
}

/// One file alone (and what it includes), as if it were the only configuration: what
/// `setup-cache --file F` judges its edit of F by.
pub(crate) fn load_alone(path: &Path) -> Layers {
    let mut layers = Layers::default();
    let i = load_file(&mut layers, path, LayerKind::User, None, &mut Vec::new());
    layers.roots.push(i);
    layers
}

fn load_file(
    layers: &mut Layers,
    path: &Path,
    kind: LayerKind,
    from: Option<(usize, usize)>,
    stack: &mut Vec<PathBuf>,
) -> usize {
    // Regular files of bounded size only: a FIFO would block (Nix too: it is named as
    // what stops it), `/dev/zero` or a huge file would fill memory.
    let meta = std::fs::metadata(path);
    let (text, exists) = match meta {
        Ok(m) if !m.file_type().is_file() => {
            layers.errors.push(LoadError::NotRegular {
                file: path.to_owned(),
                what: crate::fsutil::describe_type(m.file_type()),
            });
            (String::new(), true)
        }
        _ => match crate::fsutil::read_regular(
            path,
            crate::fsutil::MAX_TEXT_FILE,
            crate::fsutil::Follow::Symlinks,
        ) {
            Ok(Some(f)) => match String::from_utf8(f.bytes) {
                Ok(t) => (t, true),
                Err(_) => {
                    layers.errors.push(LoadError::NotUtf8 {
                        file: path.to_owned(),
                    });
                    (String::new(), true)
                }
            },
            Ok(None) => (String::new(), false),
            Err(e) if e.io.kind() == std::io::ErrorKind::PermissionDenied => {
                layers.errors.push(LoadError::Unreadable {
                    file: path.to_owned(),
                    reason: e.io.to_string(),
                });
                (String::new(), false)
            }
            Err(e) => {
                layers.errors.push(LoadError::TooLarge {
                    file: path.to_owned(),
                    reason: e.io.to_string(),
                });
                (String::new(), true)
            }
        },
    };
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    let i = add_text(layers, path.to_owned(), kind, from, &text, &base, stack);
    layers.files[i].exists = exists;
    i
}

fn add_text(
    layers: &mut Layers,
    path: PathBuf,
    kind: LayerKind,
    from: Option<(usize, usize)>,
    text: &str,
    base: &Path,
    stack: &mut Vec<PathBuf>,
) -> usize {
    let conf = NixConf::parse(text);
    let idx = layers.files.len();
    for (line, invalid) in conf.invalid_lines() {
        layers.errors.push(LoadError::InvalidLine {
            file: path.clone(),
            line: line.number,
            reason: invalid.to_string(),
        });
    }
    let includes: Vec<(usize, bool, String)> = conf
        .lines()
        .iter()
        .filter_map(|l| match &l.kind {
            LineKind::Include { optional, path } => Some((l.number, *optional, path.clone())),
            _ => None,
        })
        .collect();
    layers.files.push(ConfFile {
        path: path.clone(),
        kind,
        included_from: from,
        exists: true,
        conf,
        includes: Vec::new(),
    });
    stack.push(path.clone());
    for (line, optional, target) in includes {
        let target = base.join(target);
        if stack.contains(&target) {
            layers.errors.push(LoadError::IncludeCycle {
                file: path.clone(),
                line,
                target,
            });
            continue;
        }
        let child = load_file(
            layers,
            &target,
            LayerKind::Include,
            Some((idx, line)),
            stack,
        );
        if !layers.files[child].exists && !optional {
            layers.errors.push(LoadError::MissingInclude {
                file: path.clone(),
                line,
                target: target.clone(),
            });
        }
        layers.files[idx].includes.push((line, child));
    }
    stack.pop();
    idx
}
