//! Which file is edited (the user file Nix reads first, the system file — its
//! `nix.custom.conf` on a Determinate install — or `--file`), the layers the edit is
//! judged against, where the netrc is, and what the files hold now (read safely).

use super::*;

/// The file to edit, and what kind of file it is.
pub(super) struct Resolution {
    /// Absolute path of the nix.conf to edit.
    pub(super) target: PathBuf,
    pub(super) kind: TargetKind,
    /// The system file is a Determinate Systems install's `nix.custom.conf`.
    pub(super) determinate: bool,
}

impl Resolution {
    pub(super) fn system(&self) -> bool {
        self.kind == TargetKind::System
    }
}

pub(super) fn resolve_target(req: &Request, layers: &Layers) -> Result<Resolution, SetupError> {
    Ok(match &req.target {
        Target::User => {
            if req.env.xdg_config_home_is_empty() {
                return Err(SetupError::NoUserFile(
                    "XDG_CONFIG_HOME is set but empty, so Nix reads /nix/nix.conf as your user file: \
                     unset XDG_CONFIG_HOME (or set it to ~/.config), or pass --file PATH"
                        .into(),
                ));
            }
            let target = req.env.default_user_file().ok_or_else(|| {
                SetupError::NoUserFile(if req.env.nix_user_conf_files.is_some() {
                    "NIX_USER_CONF_FILES is set but empty, so Nix reads no user nix.conf: unset it, \
                     or pass --file PATH or --system"
                        .into()
                } else {
                    "cannot tell where your user nix.conf is: HOME and XDG_CONFIG_HOME are both \
                     unset; pass --file PATH"
                        .into()
                })
            })?;
            // `dir/` names a directory (Nix reads no file there); written as a file it
            // would be `dir`, which Nix never reads.
            if target.as_os_str().as_encoded_bytes().ends_with(b"/") {
                return Err(SetupError::NoUserFile(format!(
                    "your user nix.conf would be `{}`, a directory path (from NIX_USER_CONF_FILES, ending in `/`): Nix reads no file there; name the file (e.g. `{}nix.conf`), or pass --file PATH",
                    target.display(),
                    target.display()
                )));
            }
            Resolution {
                target,
                kind: TargetKind::User,
                determinate: false,
            }
        }
        Target::File(p) => {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                req.env.cwd.clone().unwrap_or_default().join(p)
            };
            Resolution {
                target: abs,
                kind: TargetKind::File,
                determinate: false,
            }
        }
        Target::System => {
            let sys = req.env.system_file();
            // Determinate Systems: nix.conf is the installer's; user settings go in the
            // file it includes, nix.custom.conf.
            match layers.determinate_custom_conf().map(ToOwned::to_owned) {
                Some(c) => Resolution {
                    target: c,
                    kind: TargetKind::System,
                    determinate: true,
                },
                None => Resolution {
                    target: sys,
                    kind: TargetKind::System,
                    determinate: false,
                },
            }
        }
    })
}

/// Netrc path for the target: the `netrc-file` in force when the target file itself
/// sets it (the user's own netrc, whose other entries must keep working); else next to a
/// user file; for the system file, the `netrc-file` in force or `$NIX_CONF_DIR/netrc`
/// (Nix's default).
pub(super) fn netrc_path(req: &Request, layers: &Layers, target: &Path, system: bool) -> PathBuf {
    if let Some(s) = layers.effective_scalar("netrc-file") {
        if !s.value.is_empty() && s.file.as_deref().is_some_and(|f| same_file(f, target)) {
            return PathBuf::from(s.value);
        }
    }
    if system {
        return layers
            .effective_scalar("netrc-file")
            .map(|s| PathBuf::from(s.value))
            .unwrap_or_else(|| req.env.conf_dir().join("netrc"));
    }
    target.parent().unwrap_or(Path::new(".")).join("netrc")
}

/// The configuration the edit is planned on, read under the lock.
pub(super) struct View {
    pub(super) at: Resolution,
    /// Every layer Nix reads in this environment.
    pub(super) real: Layers,
    /// Which of [`View::real`]'s files are the target (none: Nix does not read it here).
    pub(super) real_idx: Vec<usize>,
    /// What the edit is judged against: every layer for the user file; for `--system`
    /// only the system layers (the daemon reads nothing else); for `--file` that file.
    pub(super) judged: Layers,
    /// Which of [`View::judged`]'s files are the target.
    pub(super) judged_idx: Vec<usize>,
}

impl View {
    /// Loads the layers; warns when Nix does not read the target here, and about every
    /// problem in the configuration that stops Nix.
    pub(super) fn load(req: &Request, at: Resolution, warnings: &mut Vec<String>) -> View {
        let real = nixconf::load(&req.env);
        let judged = match &req.target {
            Target::User => real.clone(),
            Target::System => nixconf::load(&req.env.system_only()),
            Target::File(_) => nixconf::load_alone(&at.target),
        };
        let view = View {
            real_idx: files_named(&real, &at.target),
            judged_idx: files_named(&judged, &at.target),
            real,
            judged,
            at,
        };
        if view.real_idx.is_empty() {
            warnings.push(format!(
                "Nix does not read {} in this environment (it is not {} nor included from it): the change has no effect until it is",
                view.at.target.display(),
                match req.env.default_user_file() {
                    Some(u) => format!("{} nor {}", req.env.system_file().display(), u.display()),
                    None => req.env.system_file().display().to_string(),
                }
            ));
        }
        // Nix skips unreadable top-level files silently; everything else stops it.
        warnings.extend(
            view.real
                .errors
                .iter()
                .filter(|e| !matches!(e, nixconf::LoadError::Unreadable { .. }))
                .map(|e| format!("configuration problem Nix will hit: {e}")),
        );
        view
    }

    /// Where the edit's effect is read: for `--file F` that Nix reads here, every layer
    /// (a later file may still reset the list), though what to write was judged on F
    /// alone; else the layers it was judged on.
    pub(super) fn effect(&self, req: &Request) -> (&Layers, &[usize]) {
        match &req.target {
            Target::File(_) if !self.real_idx.is_empty() => (&self.real, &self.real_idx),
            _ => (&self.judged, &self.judged_idx),
        }
    }
}

/// The indices of the files of `layers` that are `target`.
fn files_named(layers: &Layers, target: &Path) -> Vec<usize> {
    layers
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| same_file(&f.path, target))
        .map(|(i, _)| i)
        .collect()
}

/// What the target and the netrc hold now, read once under the lock; each write later
/// replaces only the very file read here.
pub(super) struct Current {
    /// The target's text and identity; `None` when it does not exist.
    pub(super) read: Option<(String, fsutil::ReadFile)>,
    /// What the write must find at the target.
    pub(super) expect: fsutil::Expect,
    /// [`Current::text`] on the lossless model.
    pub(super) conf: NixConf,
    /// The judged layers as they are before the edit.
    pub(super) before: Layers,
    pub(super) netrc_path: PathBuf,
    /// The netrc's text, when it was read and exists.
    pub(super) netrc: Option<String>,
    /// What a write of the netrc must find.
    pub(super) netrc_expect: fsutil::Expect,
    /// The target's owner when another user (root) runs this: a netrc made for it is
    /// theirs.
    pub(super) netrc_owner: Option<(u32, u32)>,
}

impl Current {
    /// The target's text (empty when it does not exist).
    pub(super) fn text(&self) -> &str {
        self.read.as_ref().map_or("", |(t, _)| t)
    }

    /// Reads the target, and the netrc when it may change: for a token to write (an
    /// error then stops the run), or for entries to take out (when it cannot be read
    /// then, and no cache removed is a private one, the removal goes on and says what
    /// it left).
    pub(super) fn read(
        req: &Request,
        view: &View,
        has_tokens: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Current, SetupError> {
        // Read through the descriptor of the very file checked, never through a symlink
        // swapped in since (O_NOFOLLOW); the write later replaces only that same file.
        let read = read_file(&view.at.target)?;
        let conf = NixConf::parse(read.as_ref().map_or("", |(t, _)| t.as_str()));
        let before = simulate(&view.judged, &view.judged_idx, &conf);
        let netrc_path = netrc_path(req, &before, &view.at.target, view.at.system());
        let owner = foreign_owner(&view.at.target, read.as_ref().map(|(_, f)| f));
        let netrc_read = if !has_tokens && !req.remove {
            None
        } else {
            if let Some(owner) = owner {
                check_foreign_netrc(&view.at.target, owner, &netrc_path)?;
            }
            match read_file(&netrc_path) {
                Ok(r) => r,
                Err(e) if req.remove && req.caches.iter().all(|c| c.token_env.is_none()) => {
                    warnings.push(format!(
                        "{e}: the netrc was left as it is; take out any entry for {} yourself",
                        req.caches
                            .iter()
                            .filter_map(|c| url::host(&c.url))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    None
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Current {
            expect: fsutil::Expect::after_read(read.as_ref().map(|(_, f)| f)),
            netrc_expect: fsutil::Expect::after_read(netrc_read.as_ref().map(|(_, f)| f)),
            netrc: netrc_read.map(|(t, _)| t),
            read,
            conf,
            before,
            netrc_path,
            netrc_owner: owner,
        })
    }
}

/// The owner of the target (of its directory when it does not exist yet) when that is
/// not who runs this (root editing a user's file): `(uid, gid)`.
fn foreign_owner(target: &Path, read: Option<&fsutil::ReadFile>) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = match read {
        Some(f) => (f.uid, f.gid),
        None => {
            let m = std::fs::symlink_metadata(target.parent()?).ok()?;
            (m.uid(), m.gid())
        }
    };
    (owner.0 != rustix::process::geteuid().as_raw()).then_some(owner)
}

/// The netrc a foreign target names must be its owner's: an existing one owned by them,
/// or a new one in a directory of theirs (never a file of root's the user pointed at).
fn check_foreign_netrc(target: &Path, owner: (u32, u32), netrc: &Path) -> Result<(), SetupError> {
    use std::os::unix::fs::MetadataExt as _;
    let why = match std::fs::symlink_metadata(netrc) {
        Ok(m) if m.uid() == owner.0 => return Ok(()),
        Ok(m) => format!("is owned by uid {}", m.uid()),
        Err(_) => {
            let dir = netrc
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            match std::fs::symlink_metadata(dir) {
                Ok(m) if m.is_dir() && m.uid() == owner.0 => return Ok(()),
                Ok(m) => format!(
                    "does not exist and would be made in {}, a directory of uid {}",
                    dir.display(),
                    m.uid()
                ),
                Err(e) => format!("does not exist, nor does its directory ({e})"),
            }
        }
    };
    Err(SetupError::ForeignNetrc {
        target: target.to_owned(),
        target_owner: owner.0,
        netrc: netrc.to_owned(),
        why,
        me: rustix::process::geteuid().as_raw(),
    })
}

/// A file this tool may rewrite, read safely: a regular file of bounded size, never
/// through a symlink (`O_NOFOLLOW`), from the descriptor that was checked; its text and
/// identity (for the same-file check at write time). `None` when it does not exist.
pub(super) fn read_file(path: &Path) -> Result<Option<(String, fsutil::ReadFile)>, SetupError> {
    match fsutil::read_regular(path, fsutil::MAX_TEXT_FILE, fsutil::Follow::NoSymlinks)? {
        None => Ok(None),
        Some(f) => match String::from_utf8(f.bytes.clone()) {
            Ok(t) => Ok(Some((t, f))),
            Err(_) => Err(SetupError::NotUtf8 {
                path: path.to_owned(),
            }),
        },
    }
}

/// The same path, or two names of the same existing file (`./`, `..`, hard links).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

pub(super) fn backup_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(".setup-cache.bak");
    target.with_file_name(name)
}
