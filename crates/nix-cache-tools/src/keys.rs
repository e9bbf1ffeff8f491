//! Nix signing keys: `name:base64`. A public key is 32 bytes (44 base64 characters), a
//! secret key 64 bytes (seed ‖ public, 88 characters), a signature 64 bytes. Key files
//! written by `nix key generate-secret` have no trailing newline; one is tolerated.
//!
//! The signed fingerprint of a path is
//! `1;<store path>;<nar hash as sha256:nix32>;<nar size>;<comma-joined sorted references>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::fmt;
use std::path::Path;

/// Why a text or a file is not a usable Nix key. A public key is quoted in the message;
/// secret key material never is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `:` between the name and the key; the input.
    #[error("`{0}` is not a Nix key: expected NAME:BASE64, e.g. `cache.example.org-1:AbC...=`")]
    NoColon(String),
    /// The name holds white space, `#` or `=`, or the key a `#`, which nix.conf would
    /// split or cut (a whole `trusted-public-keys = ...` line pasted, say); the input.
    #[error(
        "`{0}` is not one key: paste only NAME:BASE64 (no setting name, no `=`, spaces or `#`), e.g. `cache.example.org-1:AbC...=`"
    )]
    BadName(String),
    /// Nothing before the `:`; the input.
    #[error("`{0}` has an empty key name before the `:`")]
    EmptyName(String),
    /// What follows the `:` is not base64.
    #[error("the key `{key}` is not valid base64 after the `:` ({reason})")]
    BadBase64 {
        /// The key as given; a secret key as `NAME:<secret>`.
        key: String,
        /// The base64 decoder's error.
        reason: String,
    },
    /// The key decodes to the wrong number of bytes (a truncated copy, say).
    #[error(
        "the key `{key}` decodes to {got} bytes, a Nix {kind} key has {want}: check that it was copied whole"
    )]
    BadLength {
        /// The key as given; a secret key as `NAME:<secret>`.
        key: String,
        /// `public` or `secret`.
        kind: &'static str,
        /// Bytes decoded.
        got: usize,
        /// Bytes a key of this kind has: 32 public, 64 secret.
        want: usize,
    },
    /// A secret key whose second 32 bytes are not the public key of its seed.
    #[error("the secret key `{name}` is inconsistent: its public half does not match its seed")]
    Inconsistent {
        /// The key's name.
        name: String,
    },
    /// The content is not `NAME:BASE64` (it is deliberately not quoted).
    #[error(
        "it is not a Nix secret key (expected one line NAME:BASE64, as `nix key generate-secret` writes; its content is not shown)"
    )]
    NotASecretKey,
    /// A key file could not be read.
    #[error("could not read key file {path}: {reason}")]
    Read {
        /// The file, as given.
        path: String,
        /// The I/O error, or that the file does not exist.
        reason: String,
    },
}

/// A Nix public signing key (ed25519): its name (`cache.nixos.org-1`) and 32 bytes;
/// displayed as `NAME:BASE64`, as nix.conf's `trusted-public-keys` lists it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) name: String,
    pub(crate) key: [u8; 32],
}

/// A Nix secret signing key (ed25519), as `nix key generate-secret` writes it: its
/// name and seed. `Debug` shows the name only.
#[derive(Clone)]
pub struct SecretKey {
    pub(crate) name: String,
    signing: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}:<redacted>)", self.name)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, STANDARD.encode(self.key))
    }
}

fn split_key(s: &str) -> Result<(&str, &str), KeyError> {
    let (name, b64) = s
        .split_once(':')
        .ok_or_else(|| KeyError::NoColon(s.to_owned()))?;
    if name.is_empty() {
        return Err(KeyError::EmptyName(s.to_owned()));
    }
    // nix.conf splits values on white space and cuts at `#`: such a key would be
    // written as a broken line (`trusted-public-keys = NAME:KEY` pasted whole, say).
    if name.contains(|c: char| c.is_whitespace() || c == '#' || c == '=') || b64.contains('#') {
        return Err(KeyError::BadName(crate::output::escape_controls(s)));
    }
    Ok((name, b64))
}

fn decode(s: &str, b64: &str, kind: &'static str, want: usize) -> Result<Vec<u8>, KeyError> {
    let bytes = STANDARD.decode(b64).map_err(|e| KeyError::BadBase64 {
        key: s.to_owned(),
        reason: e.to_string(),
    })?;
    if bytes.len() != want {
        return Err(KeyError::BadLength {
            key: s.to_owned(),
            kind,
            got: bytes.len(),
            want,
        });
    }
    Ok(bytes)
}

impl PublicKey {
    /// Parses `NAME:BASE64` of 32 bytes (white space around it ignored).
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        // A control character (an escape sequence pasted along) is in no key, and the
        // error must not echo it raw.
        if s.contains(char::is_control) {
            return Err(KeyError::BadName(crate::output::escape_controls(s)));
        }
        let (name, b64) = split_key(s)?;
        let bytes = decode(s, b64, "public", 32)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(PublicKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Checks a `name:base64` signature over `fingerprint`. `false` for another key's
    /// name or a bad signature.
    pub(crate) fn verify(&self, fingerprint: &str, sig: &str) -> bool {
        let Some((name, b64)) = sig.split_once(':') else {
            return false;
        };
        if name != self.name {
            return false;
        }
        let Ok(bytes) = STANDARD.decode(b64) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&self.key) else {
            return false;
        };
        vk.verify(fingerprint.as_bytes(), &sig).is_ok()
    }
}

impl SecretKey {
    /// Parses `NAME:BASE64`. Errors never quote the input: a file given as a key file
    /// may hold any secret (an SSH private key, a token), and errors get printed.
    pub(crate) fn parse(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        let (name, b64) = match s.split_once(':') {
            Some((n, b))
                if !n.is_empty()
                    && !n.contains(char::is_whitespace)
                    && !b.contains(char::is_whitespace) =>
            {
                (n, b)
            }
            _ => return Err(KeyError::NotASecretKey),
        };
        // Never echo the file in errors, not even the part before the `:` (in a file
        // that is no key, it may be an access key id) nor where the base64 breaks.
        let bytes = STANDARD.decode(b64).map_err(|_| KeyError::BadBase64 {
            key: "NAME:<secret>".to_owned(),
            reason: "not base64".to_owned(),
        })?;
        if bytes.len() != 64 {
            return Err(KeyError::BadLength {
                key: "NAME:<secret>".to_owned(),
                kind: "secret",
                got: bytes.len(),
                want: 64,
            });
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().as_bytes()[..] != bytes[32..] {
            return Err(KeyError::Inconsistent {
                name: "NAME".to_owned(),
            });
        }
        Ok(SecretKey {
            name: name.to_owned(),
            signing,
        })
    }

    /// Reads a key file (a regular file of at most a few KiB; never a FIFO or device).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        Self::read_with_warnings(path).map(|(k, _)| k)
    }

    /// [`SecretKey::read`], plus a warning when others may read the file.
    pub(crate) fn read_with_warnings(path: &Path) -> Result<(Self, Vec<String>), KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |reason: String| KeyError::Read {
            path: path.display().to_string(),
            reason,
        };
        let file = crate::fsutil::read_regular(path, 64 * 1024, crate::fsutil::Follow::Symlinks)
            .map_err(|e| read_err(e.io.to_string()))?
            .ok_or_else(|| read_err("it does not exist".to_owned()))?;
        let text = String::from_utf8(file.bytes).map_err(|_| KeyError::NotASecretKey)?;
        let key = SecretKey::parse(&text)?;
        let mut warnings = Vec::new();
        let mode = std::fs::Permissions::from_mode(file.mode).mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "the secret key file {} has mode {mode:04o}, so other users may read it and sign as this cache: `chmod 600 {}`",
                path.display(),
                crate::cmd::shell_quote(&path.display().to_string())
            ));
        }
        Ok((key, warnings))
    }

    /// The public half (Nix trusts what its `secret-key-files` sign).
    pub(crate) fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.signing.verifying_key().to_bytes(),
        }
    }

    /// `name:base64(signature)` over `fingerprint`.
    pub(crate) fn sign(&self, fingerprint: &str) -> String {
        let sig = self.signing.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, STANDARD.encode(sig.to_bytes()))
    }
}

/// The string a path's signature covers. `nar_hash` must be `sha256:<nix32>`;
/// `references` are full store paths.
pub(crate) fn fingerprint(
    store_path: &str,
    nar_hash: &str,
    nar_size: u64,
    references: &[String],
) -> String {
    let mut refs: Vec<&str> = references.iter().map(String::as_str).collect();
    refs.sort_unstable();
    format!("1;{store_path};{nar_hash};{nar_size};{}", refs.join(","))
}

/// The part of a key's name before its `-N` suffix: `cache.nixos.org-1` →
/// `cache.nixos.org`. A name without such a suffix is returned whole.
pub(crate) fn name_base(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    }
}

/// Whether public key `key` (`NAME:BASE64`) is named exactly after `host`: `HOST-N`,
/// N digits, the way Cachix (`NAME.cachix.org-1`) and `nix key generate-secret` users
/// name them. Strict: what setup-cache removes with a cache is decided by it.
pub(crate) fn named_after(key: &str, host: &str) -> bool {
    key.split_once(':')
        .and_then(|(name, _)| name.strip_prefix(host))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Whether a key's name ties it to a substituter URL, loosely (`cache.nixos.org-1` ↔
/// `https://cache.nixos.org`, a subdomain either way, or the host's first label): for
/// pairing keys with caches in reports, never for deciding what to delete.
pub(crate) fn names_cache(key_name: &str, url: &str) -> bool {
    let base = name_base(key_name).to_ascii_lowercase();
    let Some(host) = crate::url::host(url).map(str::to_ascii_lowercase) else {
        return false;
    };
    !host.is_empty()
        && !base.is_empty()
        && (host == base
            || host.ends_with(&format!(".{base}"))
            || base.ends_with(&format!(".{host}"))
            || base == host.split('.').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_match_hosts_exactly() {
        assert!(named_after("team.cachix.org-1:AAAA", "team.cachix.org"));
        assert!(named_after("h.example-23:AAAA", "h.example"));
        assert!(!named_after("h.example-1:AAAA", "example"));
        assert!(!named_after("xh.example-1:AAAA", "h.example"));
        assert!(!named_after("h.example.evil-1:AAAA", "h.example"));
        assert!(!named_after("h.example-:AAAA", "h.example"));
        assert!(!named_after("h.example:AAAA", "h.example"));
    }

    #[test]
    fn key_pairing_by_name() {
        assert!(names_cache("cache.nixos.org-1", "https://cache.nixos.org/"));
        assert!(names_cache(
            "nanna-coder.cachix.org-1",
            "https://nanna-coder.cachix.org"
        ));
        assert!(!names_cache(
            "cache.nixos.org-1",
            "https://nanna-coder.cachix.org"
        ));
        assert_eq!(name_base("foo-bar-12"), "foo-bar");
        assert_eq!(name_base("foo-bar"), "foo-bar");
    }

    // The public key cache.nixos.org publishes (from NixOS's default nix.conf).
    const NIXOS: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

    #[test]
    fn parses_real_public_key() {
        let k = PublicKey::parse(NIXOS).unwrap();
        assert_eq!(k.name, "cache.nixos.org-1");
        assert_eq!(k.to_string(), NIXOS);
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(matches!(
            PublicKey::parse("nocolon"),
            Err(KeyError::NoColon(_))
        ));
        assert!(matches!(
            PublicKey::parse(":abc"),
            Err(KeyError::EmptyName(_))
        ));
        assert!(matches!(
            PublicKey::parse("x:not base64!"),
            Err(KeyError::BadBase64 { .. })
        ));
        assert!(matches!(
            PublicKey::parse("x:AAAA"),
            Err(KeyError::BadLength { got: 3, .. })
        ));
        // Truncated real key: a copy-paste accident.
        assert!(PublicKey::parse(&NIXOS[..NIXOS.len() - 4]).is_err());
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let mut raw = seed.to_vec();
        raw.extend_from_slice(sk.verifying_key().as_bytes());
        let text = format!("test-1:{}", STANDARD.encode(&raw));
        let secret = SecretKey::parse(&text).unwrap();
        let fp = fingerprint("/nix/store/aaa-x", "sha256:0000", 1, &[]);
        let sig = secret.sign(&fp);
        assert!(secret.public().verify(&fp, &sig));
        assert!(!secret.public().verify(&format!("{fp}x"), &sig));
        assert!(format!("{secret:?}").contains("redacted"));
    }

    #[test]
    fn a_key_file_holding_another_secret_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id_ed25519");
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ-PLANTED\n-----END OPENSSH PRIVATE KEY-----\n";
        std::fs::write(&f, ssh).unwrap();
        let e = SecretKey::read(&f).unwrap_err().to_string();
        assert!(!e.contains("PLANTED") && !e.contains("OPENSSH"), "{e}");
        assert!(e.contains("not a Nix secret key"), "{e}");
        for text in [
            "token:with:colons PLANTED",
            "PLANTED",
            "name: PLANTED",
            // The part before the `:` may be an access key id; where the base64 breaks
            // says something about the secret too.
            "AKIAPLANTED13:wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
            "PLANTED9:",
            "PLANTED:ab:cd",
        ] {
            let e = SecretKey::parse(text).unwrap_err().to_string();
            assert!(!e.contains("PLANTED"), "{e}");
        }
        let e = SecretKey::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
        // A real key readable by others is used, with a warning.
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let mut bytes = seed.to_vec();
        bytes.extend_from_slice(sk.verifying_key().as_bytes());
        std::fs::write(&f, format!("k-1:{}", STANDARD.encode(&bytes))).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, w) = SecretKey::read_with_warnings(&f).unwrap();
        assert!(w[0].contains("0644"), "{w:?}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SecretKey::read_with_warnings(&f).unwrap().1.is_empty());
    }

    #[test]
    fn secret_key_errors_never_show_the_secret() {
        let err = SecretKey::parse("mykey:c2VjcmV0c2VjcmV0")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("c2VjcmV0c2VjcmV0"), "{err}");
        assert!(!err.contains("mykey") && !err.contains("offset"), "{err}");
        assert!(err.contains("decodes to 12 bytes"), "{err}");
    }
}
