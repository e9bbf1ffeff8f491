//! Which file is edited (the user file Nix reads first, the system file — its
//! `nix.custom.conf` on a Determinate install — or `--file`), and where the netrc is.

use super::*;

pub(super) struct Resolution {
    pub(super) target: PathBuf,
    pub(super) kind: TargetKind,
    pub(super) determinate: bool,
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
