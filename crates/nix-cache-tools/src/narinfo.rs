//! `<hashpart>.narinfo`: the file a binary cache serves for each store path it holds.
//!
//! ```text
//! StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
//! URL: nar/0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9.nar.xz
//! Compression: xz
//! FileHash: sha256:0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9
//! FileSize: 41104
//! NarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci
//! NarSize: 206104
//! References: 563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56 xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
//! Deriver: vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv
//! Sig: cache.nixos.org-1:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ==
//! ```
//!
//! Rules (as Nix's `NarInfo` reads them): `Key: value` lines; required are `StorePath`,
//! `URL`, `NarHash` and `NarSize` (> 0); a missing `Compression` means `bzip2`;
//! `References` and `Deriver` hold base names (`<hash>-<name>`), `Sig` may repeat, and
//! `Deriver: unknown-deriver` means none. Unknown keys are kept and written back, so
//! [`NarInfo::parse`] → [`NarInfo::render`] loses nothing a reader cares about.
//!
//! [`NarInfo::fingerprint`] is the string the `Sig` lines sign (see [`crate::keys`]);
//! [`NarInfo::verify`] checks a signature with a public key.

use crate::keys::{self, PublicKey};
use crate::nix32;
use crate::storepath;
use base64::Engine;
use std::fmt::Write as _;

/// Why a text is not a narinfo Nix would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    /// A line without a `:`. The message never quotes it: a narinfo of a hostile cache
    /// (or a link in a `file://` cache to a file of secrets) is no text to print.
    #[error("narinfo line {line} is not `Key: value`")]
    BadLine {
        /// 1-based.
        line: usize,
        /// The line, without its ending.
        text: String,
    },
    /// A required line is absent: `StorePath`, `URL`, `NarHash` or `NarSize`, named.
    #[error("narinfo has no `{0}` line (required)")]
    Missing(&'static str),
    /// A value Nix would refuse (an empty `URL`, a `NarSize` of 0 or no number, a
    /// `StorePath` that is no full store path), or a `NarHash` that
    /// [`NarInfo::fingerprint`] cannot use.
    // The value is kept for callers, never printed (see `BadLine`).
    #[error("narinfo `{key}`: bad value: {reason}")]
    BadValue {
        /// The narinfo key (`NarSize`).
        key: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed narinfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NarInfo {
    /// Full store path.
    pub store_path: String,
    /// Where the (compressed) NAR is, relative to the cache root, e.g. `nar/<hash>.nar.xz`.
    pub url: String,
    /// `xz`, `bzip2`, `zstd`, `none`, ... (`bzip2` when the line is absent).
    pub compression: String,
    /// `FileHash`: the hash of the compressed file, as written (normally
    /// `sha256:<nix32>`).
    pub(crate) file_hash: Option<String>,
    /// `FileSize`: the compressed file's size in bytes.
    pub(crate) file_size: Option<u64>,
    /// As written, normally `sha256:<nix32>`.
    pub nar_hash: String,
    /// `NarSize`: the uncompressed NAR's size in bytes (never 0).
    pub nar_size: u64,
    /// Base names, as written (may include the path itself).
    pub references: Vec<String>,
    /// Base name of the deriver.
    pub deriver: Option<String>,
    /// `Sig` lines in order, each `KEYNAME:BASE64` over [`NarInfo::fingerprint`].
    pub sigs: Vec<String>,
    /// `CA`: the content address of a content-addressed path (`fixed:r:sha256:...`,
    /// `text:sha256:...`).
    pub ca: Option<String>,
    /// Lines with keys this parser does not know, in order, kept for rendering.
    pub(crate) extra: Vec<(String, String)>,
}

impl NarInfo {
    /// Parses narinfo text; required fields are checked.
    pub fn parse(text: &str) -> Result<Self, NarInfoError> {
        let mut n = NarInfo::default();
        let (mut has_path, mut has_url, mut has_hash, mut has_size, mut has_comp) =
            (false, false, false, false, false);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(NarInfoError::BadLine {
                    line: i + 1,
                    text: line.to_owned(),
                });
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "StorePath" => {
                    if storepath::hash_part(v).is_none() || !v.starts_with('/') {
                        return Err(bad("StorePath", v, "not a full store path"));
                    }
                    n.store_path = v.to_owned();
                    has_path = true;
                }
                "URL" => {
                    if v.is_empty() {
                        return Err(bad("URL", v, "empty"));
                    }
                    n.url = v.to_owned();
                    has_url = true;
                }
                "Compression" => {
                    n.compression = v.to_owned();
                    has_comp = true;
                }
                "FileHash" => n.file_hash = Some(v.to_owned()),
                "FileSize" => n.file_size = Some(num("FileSize", v)?),
                "NarHash" => {
                    if !v.contains(':') && !v.contains('-') {
                        return Err(bad("NarHash", v, "expected ALGO:HASH"));
                    }
                    n.nar_hash = v.to_owned();
                    has_hash = true;
                }
                "NarSize" => {
                    n.nar_size = num("NarSize", v)?;
                    has_size = true;
                }
                "References" => {
                    n.references = v.split_whitespace().map(str::to_owned).collect();
                }
                "Deriver" => {
                    if v != "unknown-deriver" && !v.is_empty() {
                        n.deriver = Some(v.to_owned());
                    }
                }
                "Sig" => n.sigs.push(v.to_owned()),
                "CA" => {
                    if !v.is_empty() {
                        n.ca = Some(v.to_owned());
                    }
                }
                other => n.extra.push((other.to_owned(), v.to_owned())),
            }
        }
        if !has_path {
            return Err(NarInfoError::Missing("StorePath"));
        }
        if !has_url {
            return Err(NarInfoError::Missing("URL"));
        }
        if !has_hash {
            return Err(NarInfoError::Missing("NarHash"));
        }
        if !has_size {
            return Err(NarInfoError::Missing("NarSize"));
        }
        if n.nar_size == 0 {
            return Err(bad("NarSize", "0", "must be greater than 0"));
        }
        if !has_comp {
            n.compression = "bzip2".to_owned();
        }
        Ok(n)
    }

    /// Renders the narinfo in Nix's field order.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", self.store_path);
        let _ = writeln!(s, "URL: {}", self.url);
        let _ = writeln!(s, "Compression: {}", self.compression);
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {h}");
        }
        if let Some(z) = self.file_size {
            let _ = writeln!(s, "FileSize: {z}");
        }
        let _ = writeln!(s, "NarHash: {}", self.nar_hash);
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let _ = writeln!(s, "References: {}", self.references.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {d}");
        }
        for sig in &self.sigs {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "{k}: {v}");
        }
        s
    }

    /// The store directory, e.g. `/nix/store`.
    pub(crate) fn store_dir(&self) -> &str {
        self.store_path
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or(storepath::DEFAULT_STORE_DIR)
    }

    /// References as full store paths.
    pub(crate) fn reference_paths(&self) -> Vec<String> {
        let dir = self.store_dir();
        self.references
            .iter()
            .map(|r| format!("{dir}/{r}"))
            .collect()
    }

    /// The string the signatures cover:
    /// `1;<store path>;sha256:<nix32 nar hash>;<nar size>;<sorted full references>`.
    pub fn fingerprint(&self) -> Result<String, NarInfoError> {
        let hash = nar_hash_nix32(&self.nar_hash)
            .ok_or_else(|| bad("NarHash", &self.nar_hash, "not a sha256 hash Nix can sign"))?;
        Ok(keys::fingerprint(
            &self.store_path,
            &hash,
            self.nar_size,
            &self.reference_paths(),
        ))
    }

    /// True when some `Sig` line is a valid signature by `key`.
    pub fn verify(&self, key: &PublicKey) -> bool {
        match self.fingerprint() {
            Ok(fp) => self.sigs.iter().any(|s| key.verify(&fp, s)),
            Err(_) => false,
        }
    }

    /// The `.narinfo` file name for this path: `<hashpart>.narinfo`.
    pub(crate) fn file_name(&self) -> String {
        narinfo_file_name(&self.store_path).unwrap_or_default()
    }
}

/// `<hashpart>.narinfo` for a store path (or base name); `None` if it has no hash part.
pub fn narinfo_file_name(store_path: &str) -> Option<String> {
    storepath::hash_part(store_path).map(|h| format!("{h}.narinfo"))
}

/// Converts a sha256 hash as Nix prints it anywhere — `sha256:<nix32>`,
/// `sha256:<base16>`, `sha256-<base64>` (SRI, as `nix path-info --json` prints) — to the
/// `sha256:<nix32>` form used in fingerprints and narinfos. `None` for other
/// algorithms or malformed input.
pub(crate) fn nar_hash_nix32(hash: &str) -> Option<String> {
    let bytes: Vec<u8> = if let Some(rest) = hash.strip_prefix("sha256:") {
        match rest.len() {
            52 => nix32::decode(rest)?,
            64 => (0..32)
                .map(|i| u8::from_str_radix(rest.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?,
            44 => base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?,
            _ => return None,
        }
    } else if let Some(rest) = hash.strip_prefix("sha256-") {
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?
    } else {
        return None;
    };
    (bytes.len() == 32).then(|| format!("sha256:{}", nix32::encode(&bytes)))
}

fn bad(key: &'static str, value: &str, reason: &str) -> NarInfoError {
    NarInfoError::BadValue {
        key,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn num(key: &'static str, v: &str) -> Result<u64, NarInfoError> {
    v.parse().map_err(|_| bad(key, v, "not a number"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A real narinfo served by cache.nixos.org for GNU hello 2.10
    // (https://cache.nixos.org/xcp9cav49dmsjbwdjlmkjxj10gkpx553.narinfo), as quoted in
    // attic's narinfo tests; its Sig is cache.nixos.org's real signature.
    const HELLO: &str = "StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
URL: nar/0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9.nar.xz
Compression: xz
FileHash: sha256:0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9
FileSize: 41104
NarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci
NarSize: 206104
References: 563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56 xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10
Deriver: vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv
Sig: cache.nixos.org-1:lo9EfNIL4eGRuNh7DTbAAffWPpI2SlYC/8uP7JnhgmfRIUNGhSbFe8qEaKN0mFS02TuhPpXFPNtRkFcCp0hGAQ==
";
    const NIXOS_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

    #[test]
    fn parses_real_cache_nixos_org_narinfo() {
        let n = NarInfo::parse(HELLO).unwrap();
        assert_eq!(
            n.store_path,
            "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"
        );
        assert_eq!(
            n.url,
            "nar/0nqgf15qfiacfxrgm2wkw0gwwncjqqzzalj8rs14w9srkydkjsk9.nar.xz"
        );
        assert_eq!(n.compression, "xz");
        assert_eq!(n.file_size, Some(41104));
        assert_eq!(n.nar_size, 206104);
        assert_eq!(n.references.len(), 2);
        assert_eq!(
            n.deriver.as_deref(),
            Some("vvb4wxmnjixmrkhmj2xb75z62hrr41i7-hello-2.10.drv")
        );
        assert_eq!(n.sigs.len(), 1);
        assert_eq!(n.file_name(), "xcp9cav49dmsjbwdjlmkjxj10gkpx553.narinfo");
        assert_eq!(n.store_dir(), "/nix/store");
        // Render → parse is the identity, and the text is what cache.nixos.org serves.
        assert_eq!(n.render(), HELLO);
        assert_eq!(NarInfo::parse(&n.render()).unwrap(), n);
    }

    #[test]
    fn fingerprint_and_real_signature() {
        let n = NarInfo::parse(HELLO).unwrap();
        assert_eq!(
            n.fingerprint().unwrap(),
            "1;/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10;\
             sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci;206104;\
             /nix/store/563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56,\
             /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"
        );
        let key = PublicKey::parse(NIXOS_KEY).unwrap();
        assert!(n.verify(&key));
        let mut tampered = n.clone();
        tampered.nar_size += 1;
        assert!(!tampered.verify(&key));
    }

    #[test]
    fn defaults_and_required_fields() {
        let minimal = "StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10\n\
                       URL: nar/x.nar.bz2\nNarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\n\
                       NarSize: 5\nDeriver: unknown-deriver\nX-Custom: kept\n";
        let n = NarInfo::parse(minimal).unwrap();
        assert_eq!(n.compression, "bzip2");
        assert_eq!(n.deriver, None);
        assert!(n.references.is_empty());
        assert_eq!(n.extra, [("X-Custom".to_owned(), "kept".to_owned())]);
        for (drop, what) in [
            ("StorePath", "StorePath"),
            ("URL", "URL"),
            ("NarHash", "NarHash"),
            ("NarSize", "NarSize"),
        ] {
            let text: String = minimal
                .lines()
                .filter(|l| !l.starts_with(drop))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(
                NarInfo::parse(&text).unwrap_err(),
                NarInfoError::Missing(what)
            );
        }
        let zero = minimal.replace("NarSize: 5", "NarSize: 0");
        assert!(matches!(
            NarInfo::parse(&zero),
            Err(NarInfoError::BadValue { key: "NarSize", .. })
        ));
        assert!(matches!(
            NarInfo::parse("garbage\n"),
            Err(NarInfoError::BadLine { line: 1, .. })
        ));
    }

    #[test]
    fn hash_forms_convert_to_nix32() {
        let nix32 = "sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci";
        let bytes = crate::nix32::decode(&nix32[7..]).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let sri = format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
        assert_eq!(nar_hash_nix32(nix32).as_deref(), Some(nix32));
        assert_eq!(
            nar_hash_nix32(&format!("sha256:{hex}")).as_deref(),
            Some(nix32)
        );
        assert_eq!(nar_hash_nix32(&sri).as_deref(), Some(nix32));
        assert_eq!(nar_hash_nix32("md5:abc"), None);
    }
}
