//! Nix archives (NAR), written straight from a store path's files, streaming.
//!
//! The format (Nix's `dumpPath`), every string as a little-endian `u64` length, the
//! bytes, and zero padding to a multiple of 8:
//!
//! ```text
//! "nix-archive-1" node
//! node      = "(" "type" ( "regular" ["executable" ""] "contents" BYTES
//!                        | "symlink" "target" TARGET
//!                        | "directory" { "entry" "(" "name" NAME "node" node ")" } ) ")"
//! ```
//!
//! Directory entries come sorted by name as bytes; a regular file is executable when
//! its owner may execute it; nothing else of the file system (owners, times, other
//! modes) is recorded. [`dump`] writes a path's NAR to any [`Write`] without ever
//! holding a whole file in memory; [`HashingWriter`] counts and hashes what passes
//! through it, so a NAR can be checked against the store database's `narHash` and
//! `narSize` while it is being written — a store path whose files changed after
//! registration is caught before anything is uploaded.
//!
//! Written here rather than taken from a crate: the format is small and frozen, the
//! NAR crates on crates.io either buffer whole files or pull in a large dependency
//! tree, and the tests check the output byte for byte against `nix-store --dump`.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn write_padding(w: &mut impl Write, len: u64) -> io::Result<()> {
    let pad = (8 - (len % 8)) % 8;
    if pad > 0 {
        w.write_all(&[0u8; 8][..pad as usize])?;
    }
    Ok(())
}

fn write_str(w: &mut impl Write, s: &[u8]) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s)?;
    write_padding(w, s.len() as u64)
}

/// Writes the NAR of `path` (a file, directory or symlink, not followed) to `w`.
pub(crate) fn dump(path: &Path, w: &mut impl Write) -> io::Result<()> {
    write_str(w, b"nix-archive-1")?;
    dump_node(path, w)
}

fn dump_node(path: &Path, w: &mut impl Write) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    write_str(w, b"(")?;
    write_str(w, b"type")?;
    if ft.is_symlink() {
        write_str(w, b"symlink")?;
        write_str(w, b"target")?;
        write_str(w, fs::read_link(path)?.as_os_str().as_bytes())?;
    } else if ft.is_file() {
        write_str(w, b"regular")?;
        if meta.permissions().mode() & 0o100 != 0 {
            write_str(w, b"executable")?;
            write_str(w, b"")?;
        }
        write_str(w, b"contents")?;
        let len = meta.len();
        w.write_all(&len.to_le_bytes())?;
        let mut f = fs::File::open(path)?;
        // Exactly `len` bytes: a file that grows or shrinks while it is read would
        // otherwise make a NAR whose framing lies.
        let copied = io::copy(&mut (&mut f).take(len), w)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} changed size while it was read", path.display()),
            ));
        }
        write_padding(w, len)?;
    } else if ft.is_dir() {
        write_str(w, b"directory")?;
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            write_str(w, b"entry")?;
            write_str(w, b"(")?;
            write_str(w, b"name")?;
            write_str(w, name.as_bytes())?;
            write_str(w, b"node")?;
            dump_node(&path.join(&name), w)?;
            write_str(w, b")")?;
        }
    } else {
        return Err(io::Error::other(format!(
            "{} is {}, which a NAR cannot hold",
            path.display(),
            crate::fsutil::describe_type(ft)
        )));
    }
    write_str(w, b")")
}

/// A writer that passes bytes on while counting them and hashing them with SHA-256.
#[derive(Debug)]
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the byte count and the SHA-256 of everything written.
    pub(crate) fn finish(self) -> (W, u64, [u8; 32]) {
        (self.inner, self.len, self.hasher.finalize().into())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:<nix32>` of a digest, as narinfos and fingerprints write it.
pub(crate) fn sha256_nix32(digest: &[u8; 32]) -> String {
    format!("sha256:{}", crate::nix32::encode(digest))
}

#[cfg(test)]
/// The NAR hash and size of `path`, computed by writing its NAR to nowhere.
pub(crate) fn hash_path(path: &Path) -> io::Result<(String, u64)> {
    let mut w = HashingWriter::new(io::sink());
    dump(path, &mut w)?;
    let (_, len, digest) = w.finish();
    Ok((sha256_nix32(&digest), len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn framing_of_a_small_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("p");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("b"), b"hello").unwrap();
        fs::write(root.join("a"), b"").unwrap();
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("b", root.join("c")).unwrap();
        let mut out = Vec::new();
        dump(&root, &mut out).unwrap();
        assert_eq!(out.len() % 8, 0);
        // Entries sorted, the executable marked, the link kept as a link.
        let text = String::from_utf8_lossy(&out).replace('\0', "");
        let a = text.find("executable").unwrap();
        let b = text.find("hello").unwrap();
        assert!(a < b, "{text}");
        assert!(text.contains("symlink") && text.ends_with(")"), "{text}");
        let (hash, size) = hash_path(&root).unwrap();
        assert_eq!(size, out.len() as u64);
        assert!(hash.starts_with("sha256:") && hash.len() == 59, "{hash}");
    }

    #[test]
    fn special_files_cannot_be_archived() {
        let e = hash_path(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }
}
