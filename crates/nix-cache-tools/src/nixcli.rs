//! Talking to the installed Nix through its command line, on every version from 2.8 to
//! today and on Lix.
//!
//! Differences handled here, once:
//! - `nix` subcommands need `--extra-experimental-features nix-command` everywhere.
//! - `nix path-info --json` prints an array of objects with a `path` field (Nix 2.8–2.18,
//!   Lix; invalid paths as `{"path":…,"valid":false}`) or an object keyed by path (2.19+;
//!   invalid paths as `null`). From 2.33 `--json` alone warns that it will become an
//!   error: `--json-format 1` (the 2.19+ object) is passed there, and `--json-format 2`
//!   (`{"info": {BASENAME: ..}, "storeDir", "version": 2}`, base-name references) is
//!   read too. [`parse_path_info`] reads all three.
//! - `nix show-config` (≤ 2.19) became `nix config show` (2.20+).
//! - `nix store ping` became `nix store info` (2.19+); `--json` and `trusted` exist only on
//!   newer versions (absent on 2.8).

use crate::cmd::{Cmd, CmdError, Output, Runner};
use crate::storepath::StorePath;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A Nix command that did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum NixError {
    /// `nix` is not on PATH, could not start, timed out or failed (with its stderr).
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Nix answered, but not in a shape this version of Nix should print.
    #[error("could not understand the output of `{cmdline}`: {reason}")]
    Parse {
        /// The command line, shell-quoted.
        cmdline: String,
        /// What in the output could not be read.
        reason: String,
    },
}

/// `nix --version`, e.g. `nix (Nix) 2.8.0`, `nix (Lix, like Nix) 2.91.1`,
/// `nix (Determinate Nix 3.6.2) 2.29.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NixVersion {
    /// `major.minor.patch` are the last word of `nix --version`: Lix's own numbers on
    /// Lix, upstream Nix's on Determinate Nix.
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) patch: u32,
    /// Lix rather than Nix: [`NixVersion::at_least`] takes it as Nix 2.18.
    pub(crate) lix: bool,
}

impl NixVersion {
    /// Reads the first line of `nix --version`; `None` when it ends in no version number.
    pub fn parse(version_output: &str) -> Option<Self> {
        let line = version_output.lines().next()?;
        let lix = line.contains("Lix");
        // The version is the last word; Determinate puts its own version in parentheses.
        let word = line.split_whitespace().last()?;
        let mut nums = word
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().ok());
        let major = nums.next()??;
        let minor = nums.next().flatten().unwrap_or(0);
        let patch = nums.next().flatten().unwrap_or(0);
        Some(NixVersion {
            major,
            minor,
            patch,
            lix,
        })
    }

    /// Compares against an upstream Nix version. Lix forked at Nix 2.18 and keeps the
    /// 2.18-era CLI (array-shaped `path-info --json`, `show-config`), so it counts as 2.18.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let (ma, mi) = if self.lix {
            (2, 18)
        } else {
            (self.major, self.minor)
        };
        (ma, mi) >= (major, minor)
    }
}

impl fmt::Display for NixVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = if self.lix { "Lix" } else { "Nix" };
        write!(f, "{n} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One entry of `nix path-info --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathInfo {
    /// Full store path.
    pub path: StorePath,
    /// False for a path the store does not hold (Nix prints it with `"valid": false` or
    /// as `null`); every other field is then empty.
    pub valid: bool,
    /// As Nix printed it: `sha256-<base64>` (SRI) or `sha256:<nix32>`.
    pub nar_hash: Option<String>,
    /// NAR size in bytes (0 when Nix gives none).
    pub nar_size: u64,
    /// Present with `--closure-size` (`-S`).
    pub closure_size: Option<u64>,
    /// Full store paths.
    pub references: Vec<StorePath>,
    /// Full store path of the `.drv` that built it, when Nix knows it.
    pub deriver: Option<StorePath>,
    /// Signatures, `KEYNAME:BASE64`.
    pub signatures: Vec<String>,
    /// Content address of a content-addressed path (newer Nix may print it as an
    /// object: then its JSON text).
    pub ca: Option<String>,
}

impl PathInfo {
    /// A path the store does not hold (`valid: false`, every other field empty).
    pub fn invalid(path: StorePath) -> Self {
        PathInfo {
            path,
            valid: false,
            nar_hash: None,
            nar_size: 0,
            closure_size: None,
            references: Vec::new(),
            deriver: None,
            signatures: Vec::new(),
            ca: None,
        }
    }
}

/// Reads `nix path-info --json` output of any Nix version. A path in it that is not a
/// store path under `store_dir` (or the `storeDir` it names) is an error.
pub fn parse_path_info(json: &str, store_dir: &str) -> Result<Vec<PathInfo>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    match v {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let path = item
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or("array entry without a `path` field")?;
                one_path_info(path, Some(item), store_dir)
            })
            .collect(),
        // `--json-format 2` (Nix 2.33+): `{"info": {BASENAME: {...}}, "storeDir": ..,
        // "version": 2}`, references as base names.
        Value::Object(map) if map.get("version").is_some_and(Value::is_number) => {
            let dir = map
                .get("storeDir")
                .and_then(Value::as_str)
                .unwrap_or(store_dir);
            let info = map
                .get("info")
                .and_then(Value::as_object)
                .ok_or("`--json-format 2` output without an `info` object")?;
            info.iter()
                .map(|(name, item)| {
                    let path = if name.starts_with('/') {
                        name.clone()
                    } else {
                        format!("{dir}/{name}")
                    };
                    one_path_info(&path, Some(item).filter(|i| !i.is_null()), dir)
                })
                .collect()
        }
        Value::Object(map) => map
            .iter()
            .map(|(path, item)| one_path_info(path, Some(item).filter(|i| !i.is_null()), store_dir))
            .collect(),
        _ => Err("expected a JSON array or object".to_owned()),
    }
}

fn one_path_info(path: &str, item: Option<&Value>, store_dir: &str) -> Result<PathInfo, String> {
    let checked = |s: &str| {
        if s.starts_with('/') {
            StorePath::new(s, store_dir)
        } else {
            StorePath::from_base_name(s, store_dir)
        }
        .map_err(|e| format!("Nix printed {e}"))
    };
    let path = checked(path)?;
    let Some(item) = item.filter(|i| i.get("valid") != Some(&Value::Bool(false))) else {
        return Ok(PathInfo::invalid(path));
    };
    let strings = |key: &str| -> Vec<String> {
        item.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let hash = match item.get("narHash") {
        Some(Value::String(s)) => Some(s.clone()),
        // Newer JSON formats may describe a hash as an object {algorithm, hash}.
        Some(Value::Object(o)) => match (o.get("algorithm"), o.get("hash")) {
            (Some(Value::String(a)), Some(Value::String(h))) => Some(format!("{a}-{h}")),
            _ => None,
        },
        _ => None,
    };
    let ca = match item.get("ca") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        _ => None,
    };
    Ok(PathInfo {
        path,
        valid: true,
        nar_hash: hash,
        nar_size: item.get("narSize").and_then(Value::as_u64).unwrap_or(0),
        closure_size: item.get("closureSize").and_then(Value::as_u64),
        references: strings("references")
            .iter()
            .map(|r| checked(r))
            .collect::<Result<_, _>>()?,
        deriver: item
            .get("deriver")
            .and_then(Value::as_str)
            .map(checked)
            .transpose()?,
        signatures: strings("signatures"),
        ca,
    })
}

/// How long a query of the configuration or the version may take: these answer in
/// milliseconds, so a Nix still busy after this is stuck (e.g. Nix 2.8 recursing without
/// end on a self-including nix.conf) and is killed.
pub(crate) const QUICK_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a `nix path-info` over a closure or a whole store may take (1,000,000
/// paths took 53 s here).
pub(crate) const PATH_INFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The installed Nix, reached through its CLI.
#[derive(Debug, Clone)]
pub struct Nix {
    program: String,
    store: Option<String>,
    version: NixVersion,
    runner: Runner,
}

impl Nix {
    /// Finds `nix` on PATH and asks its version. `store` is passed as `--store`.
    pub(crate) fn detect(runner: Runner, store: Option<String>) -> Result<Self, NixError> {
        let cmd = Cmd::new("nix")
            .arg("--version")
            .read_only()
            .timeout(QUICK_QUERY_TIMEOUT);
        let out = runner.run(&cmd)?;
        let text = out.stdout_str();
        let version = NixVersion::parse(&text).ok_or_else(|| NixError::Parse {
            cmdline: cmd.display(),
            reason: format!("no version in {:?}", text.trim()),
        })?;
        Ok(Nix {
            program: "nix".to_owned(),
            store,
            version,
            runner,
        })
    }

    /// For tests and for callers that know the version.
    pub(crate) fn with_version(version: NixVersion, store: Option<String>, runner: Runner) -> Self {
        Nix {
            program: "nix".to_owned(),
            store,
            version,
            runner,
        }
    }

    pub(crate) fn version(&self) -> NixVersion {
        self.version
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }

    /// `nix --extra-experimental-features nix-command [--store S] <args>`.
    pub(crate) fn command<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Cmd::new(&self.program).args(["--extra-experimental-features", "nix-command"]);
        if let Some(s) = &self.store {
            c = c.args(["--store", s.as_str()]);
        }
        c.args(args)
    }

    /// Argument vector of `nix path-info --json [-r] [-S] PATHS...`.
    pub(crate) fn path_info_cmd<S: AsRef<str>>(
        &self,
        paths: &[S],
        recursive: bool,
        closure_size: bool,
    ) -> Cmd {
        let mut args = vec!["path-info".to_owned(), "--json".to_owned()];
        // Nix 2.33+ warns that `--json` without `--json-format` will become an error;
        // older versions do not know the flag. Format 1 is the object shape of 2.19+.
        if self.version.at_least(2, 33) {
            args.extend(["--json-format".to_owned(), "1".to_owned()]);
        }
        if recursive {
            args.push("--recursive".to_owned());
        }
        if closure_size {
            args.push("--closure-size".to_owned());
        }
        args.extend(paths.iter().map(|p| p.as_ref().to_owned()));
        self.command(args).read_only().timeout(PATH_INFO_TIMEOUT)
    }

    /// Path infos of `paths` (and of their closure with `recursive`).
    pub(crate) fn path_info(
        &self,
        paths: &[StorePath],
        recursive: bool,
    ) -> Result<Vec<PathInfo>, NixError> {
        let cmd = self.path_info_cmd(paths, recursive, false);
        let out = self.runner.run(&cmd)?;
        parse_path_info(&out.stdout_str(), crate::storepath::DEFAULT_STORE_DIR).map_err(|reason| {
            NixError::Parse {
                cmdline: cmd.display(),
                reason,
            }
        })
    }

    /// Argument vector for the settings in force, as the client sees them.
    pub(crate) fn show_config_cmd(&self) -> Cmd {
        let args: &[&str] = if self.version.at_least(2, 20) {
            &["config", "show", "--json"]
        } else {
            &["show-config", "--json"]
        };
        // Never point at a store: reading config must not need one.
        Cmd::new(&self.program)
            .args(["--extra-experimental-features", "nix-command"])
            .args(args)
            .read_only()
            .timeout(QUICK_QUERY_TIMEOUT)
    }

    /// `{name: value}` of every setting in force.
    pub(crate) fn show_config(&self) -> Result<BTreeMap<String, Value>, NixError> {
        let cmd = self.show_config_cmd();
        let out = self.runner.run(&cmd)?;
        parse_show_config(&out.stdout_str()).map_err(|reason| NixError::Parse {
            cmdline: cmd.display(),
            reason,
        })
    }

    /// Whether the store (daemon) says we are trusted: `Some(bool)` on Nix 2.15+ (as an
    /// integer until 2.32, a boolean from 2.33), `None` where Nix cannot tell.
    pub(crate) fn store_trusted(&self) -> Option<bool> {
        if !self.version.at_least(2, 15) {
            return None;
        }
        let sub = if self.version.at_least(2, 19) {
            "info"
        } else {
            "ping"
        };
        let cmd = self
            .command(["store", sub, "--json"])
            .read_only()
            .timeout(QUICK_QUERY_TIMEOUT);
        let out = self.runner.run(&cmd).ok()?;
        let v: Value = serde_json::from_str(&out.stdout_str()).ok()?;
        match v.get("trusted")? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_u64()? != 0),
            _ => None,
        }
    }
}

/// What a Nix says when it has no store implementation for a URI: Nix 2.8 `don't know
/// how to open Nix store 's3://...'`, 2.26 `don't know how to open Nix store with scheme
/// 's3'` (Debian builds both without S3 support).
const NO_STORE_IMPLEMENTATION: &str = "don't know how to open Nix store";

/// How a Nix reads `s3://` stores, found by [`Nix::s3_support`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Support {
    /// No S3 store in this build (Debian's Nix 2.8 and 2.26): it skips `s3://`
    /// substituters with a warning.
    None,
    /// It opens `s3://` stores but sends its requests unsigned though credentials are
    /// set (Debian's Nix 2.34): only buckets that allow anonymous reads work.
    Unsigned,
    /// Requests signed with AWS Signature V4 (upstream builds).
    Signed,
}

impl Nix {
    /// How this Nix reads `s3://` stores: it is pointed at an `s3://` store whose
    /// endpoint is a listener of ours on 127.0.0.1, with throw-away credentials in its
    /// environment, and the first request it sends (if any) tells whether it signs.
    /// Nothing leaves the machine. `None` when it cannot be told (Nix did not run).
    pub(crate) fn s3_support(&self) -> Option<S3Support> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        let port = listener.local_addr().ok()?.port();
        listener.set_nonblocking(true).ok()?;
        let deadline = std::time::Instant::now() + QUICK_QUERY_TIMEOUT;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let seen = std::thread::spawn(move || -> Option<bool> {
            while std::time::Instant::now() < deadline && done_rx.try_recv().is_err() {
                match listener.accept() {
                    Ok((conn, _)) => return Some(request_is_signed(conn)),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            None
        });
        let sub = if self.version.at_least(2, 19) {
            "info"
        } else {
            "ping"
        };
        let uri = format!(
            "s3://nix-cache-tools-probe?endpoint=http://127.0.0.1:{port}&region=us-east-1&scheme=http"
        );
        let cmd = Cmd::new(&self.program)
            .args(["--extra-experimental-features", "nix-command"])
            .args(["store", sub, "--store", uri.as_str()])
            .args(["--option", "download-attempts", "1"])
            .env("AWS_ACCESS_KEY_ID", "AKIANIXCACHETOOLSPROBE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "nix-cache-tools-probe-not-a-secret",
            )
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .read_only()
            .timeout(QUICK_QUERY_TIMEOUT);
        let out = self.runner.run_unchecked(&cmd);
        let _ = done_tx.send(());
        let signed = seen.join().ok().flatten();
        let out = out.ok().filter(Output::was_run)?;
        match signed {
            Some(true) => Some(S3Support::Signed),
            Some(false) => Some(S3Support::Unsigned),
            None if out.stderr_str().contains(NO_STORE_IMPLEMENTATION) => Some(S3Support::None),
            None => None,
        }
    }
}

/// Reads one request head from `conn` (at most 16 KiB, 5 s) and answers 404: whether it
/// carries an AWS Signature V4 `Authorization` header.
fn request_is_signed(mut conn: std::net::TcpStream) -> bool {
    use std::io::{Read as _, Write as _};
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ =
        conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    String::from_utf8_lossy(&head).lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("authorization")
                && v.trim().starts_with("AWS4-HMAC-SHA256")
        })
    })
}

/// Reads `nix show-config --json` / `nix config show --json`: `{name: {value, ...}}`.
pub(crate) fn parse_show_config(json: &str) -> Result<BTreeMap<String, Value>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    Ok(obj
        .iter()
        .map(|(k, s)| (k.clone(), s.get("value").cloned().unwrap_or(Value::Null)))
        .collect())
}

/// A list/set setting's value as strings: Nix prints lists as JSON arrays, older
/// versions some as space-separated strings.
pub fn setting_strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = NixVersion::parse("nix (Nix) 2.8.0\n").unwrap();
        assert_eq!((v.major, v.minor, v.patch, v.lix), (2, 8, 0, false));
        assert!(!v.at_least(2, 19));
        let v = NixVersion::parse("nix (Lix, like Nix) 2.91.1").unwrap();
        assert!(v.lix && v.at_least(2, 18) && !v.at_least(2, 19));
        let v = NixVersion::parse("nix (Determinate Nix 3.6.2) 2.29.0").unwrap();
        assert_eq!((v.major, v.minor), (2, 29));
        let v = NixVersion::parse("nix (Nix) 2.34.0pre20251101_dirty").unwrap();
        assert!(v.at_least(2, 33));
    }

    // Captured from Debian's nix-bin 2.8.0: `nix path-info --json -r` on a test closure.
    const ARRAY_SHAPE: &str = r#"[{"path":"/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b","narHash":"sha256-U8IYiG9ULgAItYGGnjRFDbwF8JT32k1DMg+WfkfgaBs=","narSize":336,"references":["/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source"],"deriver":"/nix/store/k0xyg0cgva4byzg87l040h5j5ia4y6dc-b.drv","registrationTime":1795251548,"ultimate":true},{"path":"/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source","narHash":"sha256-MyEwKR7frLkJXyCTAYmhACAemt2h4EszAo04ltEu78o=","narSize":288,"references":[],"deriver":"/nix/store/k78g6pbsgb7874n4xdjp2csbb76a03jj-a-source.drv","registrationTime":1795251548,"ultimate":true},{"path":"/nix/store/00000000000000000000000000000000-gone","valid":false}]"#;

    // The 2.19+ shape (object keyed by path, `null` for invalid), same data.
    const OBJECT_SHAPE: &str = r#"{"/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b":{"narHash":"sha256-U8IYiG9ULgAItYGGnjRFDbwF8JT32k1DMg+WfkfgaBs=","narSize":336,"references":["/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source"],"deriver":"/nix/store/k0xyg0cgva4byzg87l040h5j5ia4y6dc-b.drv","registrationTime":1795251548,"ultimate":true,"signatures":[],"ca":null},"/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source":{"narHash":"sha256-MyEwKR7frLkJXyCTAYmhACAemt2h4EszAo04ltEu78o=","narSize":288,"references":[],"deriver":"/nix/store/k78g6pbsgb7874n4xdjp2csbb76a03jj-a-source.drv","ultimate":true,"signatures":[],"ca":null},"/nix/store/00000000000000000000000000000000-gone":null}"#;

    #[test]
    fn both_path_info_shapes_read_the_same() {
        let mut a = parse_path_info(ARRAY_SHAPE, "/nix/store").unwrap();
        let mut o = parse_path_info(OBJECT_SHAPE, "/nix/store").unwrap();
        a.sort_by(|x, y| x.path.cmp(&y.path));
        o.sort_by(|x, y| x.path.cmp(&y.path));
        assert_eq!(a, o);
        assert_eq!(a.len(), 3);
        assert!(!a[0].valid);
        let b = a.iter().find(|p| p.path.ends_with("-b")).unwrap();
        assert_eq!(b.nar_size, 336);
        assert_eq!(
            b.references,
            ["/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source"]
        );
    }

    #[test]
    fn json_format_2_reads_the_same() {
        // The shape of `nix path-info --json --json-format 2` (Nix 2.34): base names.
        let v2 = r#"{"info":{"4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b":{"narHash":"sha256-U8IYiG9ULgAItYGGnjRFDbwF8JT32k1DMg+WfkfgaBs=","narSize":336,"references":["xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source"],"deriver":"k0xyg0cgva4byzg87l040h5j5ia4y6dc-b.drv","registrationTime":1795251548,"ultimate":true,"signatures":[],"ca":null},"xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-a-source":{"narHash":"sha256-MyEwKR7frLkJXyCTAYmhACAemt2h4EszAo04ltEu78o=","narSize":288,"references":[],"deriver":"k78g6pbsgb7874n4xdjp2csbb76a03jj-a-source.drv","ultimate":true,"signatures":[],"ca":null},"00000000000000000000000000000000-gone":null},"storeDir":"/nix/store","version":2}"#;
        let mut a = parse_path_info(ARRAY_SHAPE, "/nix/store").unwrap();
        let mut b = parse_path_info(v2, "/nix/store").unwrap();
        a.sort_by(|x, y| x.path.cmp(&y.path));
        b.sort_by(|x, y| x.path.cmp(&y.path));
        assert_eq!(a, b);
        let new = Nix::with_version(
            NixVersion::parse("nix (Nix) 2.34.8").unwrap(),
            None,
            Runner::new(),
        );
        let argv = new.path_info_cmd(&["/nix/store/x"], false, false).argv();
        assert!(
            argv.windows(2).any(|w| w == ["--json-format", "1"]),
            "{argv:?}"
        );
        let old = Nix::with_version(
            NixVersion::parse("nix (Nix) 2.26.3").unwrap(),
            None,
            Runner::new(),
        );
        let argv = old.path_info_cmd(&["/nix/store/x"], false, false).argv();
        assert!(!argv.contains(&"--json-format".to_owned()), "{argv:?}");
    }

    #[test]
    fn show_config_value_extraction() {
        let j = r#"{"substituters":{"value":["https://cache.nixos.org/"],"defaultValue":[]},"require-sigs":{"value":true}}"#;
        let m = parse_show_config(j).unwrap();
        assert_eq!(
            setting_strings(&m["substituters"]),
            ["https://cache.nixos.org/"]
        );
        assert_eq!(m["require-sigs"], Value::Bool(true));
    }

    #[test]
    fn config_command_follows_version() {
        let old = Nix::with_version(
            NixVersion::parse("nix (Nix) 2.8.0").unwrap(),
            None,
            Runner::new(),
        );
        assert!(
            old.show_config_cmd()
                .argv()
                .contains(&"show-config".to_owned())
        );
        let new = Nix::with_version(
            NixVersion::parse("nix (Nix) 2.24.1").unwrap(),
            Some("/tmp/s".into()),
            Runner::new(),
        );
        let argv = new.show_config_cmd().argv();
        assert_eq!(&argv[3..], ["config", "show", "--json"]);
        let pi = new.path_info_cmd(&["/nix/store/x"], true, false).argv();
        assert_eq!(
            pi,
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "--store",
                "/tmp/s",
                "path-info",
                "--json",
                "--recursive",
                "/nix/store/x"
            ]
        );
    }
}
