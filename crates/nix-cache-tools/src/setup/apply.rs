//! The planned edit written: under a lock on the target, the backup first, then each
//! file replaced atomically, and only if it is still the very file that was read.

use super::*;

/// The lock on the target's directory, held from reading to writing so that concurrent
/// runs cannot lose each other's edits; on taking it, the temporary files an earlier
/// run killed mid-write left behind are removed (each named in a warning). No lock in
/// dry-run mode, nor for `--remove` when the target's directory does not exist (so that
/// the lock does not create `~/.config/nix` only to find it empty).
pub(super) fn lock(
    req: &Request,
    target: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<fsutil::FileLock>, SetupError> {
    let nothing_to_remove = req.remove && target.parent().is_some_and(|d| !d.exists());
    if req.dry_run || nothing_to_remove {
        return Ok(None);
    }
    let lock = fsutil::FileLock::acquire(target, req.on_lock_wait)?;
    let netrc_guess = target.with_file_name("netrc");
    for stale in [target.to_owned(), backup_path(target), netrc_guess]
        .iter()
        .flat_map(|p| fsutil::remove_stale_temps(p))
    {
        warnings.push(format!(
            "removed {}, a temporary file an interrupted earlier run left behind",
            stale.display()
        ));
    }
    Ok(Some(lock))
}

/// Writes what `edit` plans, in the order that never leaves a half-done change: the
/// backup of the target as it was (a copy, harmless on its own), then the netrc (mode
/// 0600), then the target (or deletes it when `--remove` left it empty). When the
/// target cannot be written after the netrc was, the netrc is put back as it was.
pub(super) fn write(
    target: &Path,
    cur: &Current,
    edit: &Edit,
    report: &mut Report,
) -> Result<(), SetupError> {
    if report.changed {
        if let Some((prev, read)) = &cur.read {
            // The backup is the user's file as it was: same owner and mode, so a user can
            // read the backup root made of their nix.conf.
            let b = backup_path(target);
            fsutil::replace_file(
                &b,
                prev.as_bytes(),
                &fsutil::Replace {
                    mode: Some(read.mode & 0o7777),
                    owner: Some((read.uid, read.gid)),
                    expect: fsutil::Expect::Any,
                },
            )?;
            report.backup = Some(b);
        }
    }
    let netrc_mode = fsutil::Replace {
        mode: Some(0o600),
        owner: cur.netrc_owner,
        expect: cur.netrc_expect,
    };
    match &edit.netrc {
        NetrcChange::Write(text) => {
            fsutil::replace_file(&cur.netrc_path, text.as_bytes(), &netrc_mode)?;
        }
        NetrcChange::Delete => fsutil::remove_file_checked(&cur.netrc_path, cur.netrc_expect)?,
        NetrcChange::Keep => {}
    }
    if !report.changed {
        return Ok(());
    }
    let written = if report.deleted {
        fsutil::remove_file_checked(target, cur.expect)
    } else {
        fsutil::replace_file(
            target,
            edit.text.as_bytes(),
            &fsutil::Replace {
                expect: cur.expect,
                ..fsutil::Replace::default()
            },
        )
    };
    if let Err(e) = written {
        if edit.netrc != NetrcChange::Keep {
            // Best effort: the error about the target is the one to report.
            let _ = match &cur.netrc {
                Some(old) => fsutil::replace_file(
                    &cur.netrc_path,
                    old.as_bytes(),
                    &fsutil::Replace {
                        expect: fsutil::Expect::Any,
                        ..netrc_mode
                    },
                ),
                None => fsutil::remove_file_checked(&cur.netrc_path, fsutil::Expect::Any),
            };
        }
        return Err(e.into());
    }
    Ok(())
}
