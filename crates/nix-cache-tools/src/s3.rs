//! S3-compatible object storage as a binary cache: `s3://BUCKET?region=..&endpoint=..
//! &profile=..&scheme=..`, read the way Nix reads these URIs, and credentials found the
//! way Nix and the AWS tools find them. Requests are signed with AWS Signature V4 by
//! `rusty-s3` (a sans-I/O signer: it makes presigned URLs, ureq sends them).
//!
//! Nix's rules (2.8 → today): the region defaults to `us-east-1`; without `endpoint` the
//! bucket is on AWS (`https://s3.REGION.amazonaws.com`, virtual-host addressing); with
//! one (`host[:port]`, or a URL) requests go there path-style, as the AWS SDK does when
//! Nix sets an endpoint; `scheme=http` talks plain HTTP to it. `addressing-style=path` or
//! `virtual` (Nix 2.33+) chooses explicitly. Credentials: with `profile=`, that profile of
//! the shared credentials file only; else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`; else the `AWS_PROFILE` (or `default`) profile of
//! `AWS_SHARED_CREDENTIALS_FILE` (or `~/.aws/credentials`).
//!
//! Presigned URLs carry the access key id and a signature: they are never shown. Messages
//! name objects as `s3://BUCKET/KEY`.

use rusty_s3::actions::S3Action;
use std::time::Duration;

/// How long a presigned request stays valid: it is checked when the request starts.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    #[error("{uri}: {reason}")]
    Uri { uri: String, reason: String },
    #[error("{path}: {reason}")]
    Credentials { path: String, reason: String },
}

/// The parts of an `s3://` store URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Uri {
    pub bucket: String,
    pub region: String,
    /// `scheme://host[:port]` of an S3-compatible service; `None` for AWS.
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub path_style: bool,
    /// Nix's `multipart-chunk-size`: the part size of multipart uploads, in bytes.
    pub part_size: Option<u64>,
}

impl S3Uri {
    pub(crate) fn parse(uri: &str) -> Result<Self, S3Error> {
        let bad = |reason: &str| S3Error::Uri {
            uri: crate::redact::url(uri),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3:// URI"))?;
        let bucket = rest.split(['?', '/']).next().unwrap_or_default();
        if bucket.is_empty()
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
        {
            return Err(bad(
                "the bucket name (after s3://) must be lower-case letters, digits, '.', '-' or '_'",
            ));
        }
        let param = |k: &str| crate::url::store_param(uri, k).filter(|v| !v.is_empty());
        let scheme = match param("scheme") {
            None | Some("https") => "https",
            Some("http") => "http",
            Some(_) => return Err(bad("?scheme= must be http or https")),
        };
        let endpoint = param("endpoint").map(|e| {
            if e.contains("://") {
                e.trim_end_matches('/').to_owned()
            } else {
                format!("{scheme}://{}", e.trim_end_matches('/'))
            }
        });
        let path_style = match param("addressing-style") {
            None | Some("auto") => endpoint.is_some(),
            Some("path") => true,
            Some("virtual") => false,
            Some(_) => return Err(bad("?addressing-style= must be auto, path or virtual")),
        };
        Ok(S3Uri {
            bucket: bucket.to_owned(),
            region: param("region").unwrap_or("us-east-1").to_owned(),
            endpoint,
            profile: param("profile").map(str::to_owned),
            path_style,
            part_size: param("multipart-chunk-size").and_then(|v| v.parse().ok()),
        })
    }
}

/// AWS credentials for a URI, or `None` when there are none (the push is then skipped).
/// Every secret found is registered with [`crate::redact`].
pub(crate) fn credentials(uri: &S3Uri) -> Result<Option<rusty_s3::Credentials>, S3Error> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let found = match &uri.profile {
        Some(p) => from_profile(p)?,
        None => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(k), Some(s)) => Some((k, s, env("AWS_SESSION_TOKEN"))),
            _ => from_profile(&env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned()))?,
        },
    };
    Ok(found.map(|(key, secret, token)| {
        crate::redact::register_secret(&key);
        crate::redact::register_secret(&secret);
        if let Some(t) = &token {
            crate::redact::register_secret(t);
        }
        match token {
            Some(t) => rusty_s3::Credentials::new_with_token(key, secret, t),
            None => rusty_s3::Credentials::new(key, secret),
        }
    }))
}

/// The shared credentials file Nix's AWS SDK reads.
fn credentials_file() -> Option<std::path::PathBuf> {
    match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|v| !v.is_empty()) {
        Some(f) => Some(f.into()),
        None => dirs::home_dir().map(|h| h.join(".aws/credentials")),
    }
}

type Found = Option<(String, String, Option<String>)>;

/// A profile of the credentials file: `None` when the file or the profile is missing.
fn from_profile(profile: &str) -> Result<Found, S3Error> {
    let Some(path) = credentials_file() else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let file = crate::fsutil::read_regular(
        &path,
        crate::fsutil::MAX_TEXT_FILE,
        crate::fsutil::Follow::Symlinks,
    )
    .map_err(|e| S3Error::Credentials {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let Some(file) = file else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&file.bytes);
    Ok(parse_profile(&text, profile))
}

/// `[profile]` of an AWS credentials file (INI): key id, secret and session token.
fn parse_profile(text: &str, profile: &str) -> Found {
    let mut in_profile = false;
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((key?, secret?, token))
}

/// A bucket with the credentials to sign requests for it (anonymous when there are none).
#[derive(Debug)]
pub(crate) struct S3Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Option<rusty_s3::Credentials>,
    /// `s3://BUCKET`, for messages.
    url: String,
    /// Where the bucket is (`Bucket::base_url`): which journal entries are its.
    identity: String,
    /// `?multipart-chunk-size=` of the URI.
    part_size: Option<u64>,
}

impl S3Bucket {
    pub(crate) fn open(uri: &str) -> Result<Self, S3Error> {
        let parsed = S3Uri::parse(uri)?;
        let credentials = credentials(&parsed)?;
        Self::with_credentials(&parsed, credentials).map_err(|reason| S3Error::Uri {
            uri: crate::redact::url(uri),
            reason,
        })
    }

    fn with_credentials(
        uri: &S3Uri,
        credentials: Option<rusty_s3::Credentials>,
    ) -> Result<Self, String> {
        let endpoint = uri
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", uri.region));
        let endpoint = endpoint
            .parse()
            .map_err(|e| format!("endpoint {endpoint}: {e}"))?;
        let style = if uri.path_style {
            rusty_s3::UrlStyle::Path
        } else {
            rusty_s3::UrlStyle::VirtualHost
        };
        let bucket = rusty_s3::Bucket::new(endpoint, style, uri.bucket.clone(), uri.region.clone())
            .map_err(|e| format!("{e}"))?;
        Ok(S3Bucket {
            identity: bucket.base_url().to_string(),
            bucket,
            credentials,
            url: format!("s3://{}", uri.bucket),
            part_size: uri.part_size,
        })
    }

    /// The part size the URI asks for (`?multipart-chunk-size=`), if any.
    pub(crate) fn part_size(&self) -> Option<u64> {
        self.part_size
    }

    /// True when no credentials were found: requests go unsigned (a public bucket's
    /// reads work; a push cannot).
    pub(crate) fn is_anonymous(&self) -> bool {
        self.credentials.is_none()
    }

    /// `s3://BUCKET`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `s3://BUCKET/KEY`, how an object is named in messages.
    pub(crate) fn shown(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    fn creds(&self) -> Option<&rusty_s3::Credentials> {
        self.credentials.as_ref()
    }

    pub(crate) fn get(&self, key: &str) -> String {
        self.bucket
            .get_object(self.creds(), key)
            .sign(SIGNED_FOR)
            .into()
    }

    pub(crate) fn head(&self, key: &str) -> String {
        self.bucket
            .head_object(self.creds(), key)
            .sign(SIGNED_FOR)
            .into()
    }

    pub(crate) fn put(&self, key: &str) -> String {
        self.bucket
            .put_object(self.creds(), key)
            .sign(SIGNED_FOR)
            .into()
    }

    pub(crate) fn create_multipart(&self, key: &str) -> String {
        self.bucket
            .create_multipart_upload(self.creds(), key)
            .sign(SIGNED_FOR)
            .into()
    }

    pub(crate) fn upload_part(&self, key: &str, part: u16, upload_id: &str) -> String {
        self.bucket
            .upload_part(self.creds(), key, part, upload_id)
            .sign(SIGNED_FOR)
            .into()
    }

    /// The URL and the XML body completing an upload of parts with these ETags.
    pub(crate) fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> (String, String) {
        let action = self.bucket.complete_multipart_upload(
            self.creds(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR).into();
        (url, action.body())
    }

    pub(crate) fn abort_multipart(&self, key: &str, upload_id: &str) -> String {
        self.bucket
            .abort_multipart_upload(self.creds(), key, upload_id)
            .sign(SIGNED_FOR)
            .into()
    }
}

/// A record, on this machine, of each multipart upload push-cache has started and not
/// yet completed or aborted: S3 keeps the parts of an upload nobody finishes (storage
/// that is billed and never shown as an object), and a push killed mid-upload (SIGKILL,
/// a cancelled CI job) cannot abort it itself. The next push to the same bucket from this
/// machine aborts the uploads whose process is gone. (S3 cannot be asked instead: not
/// every S3-compatible server lists multipart uploads; a bucket lifecycle rule
/// "AbortIncompleteMultipartUpload" covers machines that never push again.)
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    dir: std::path::PathBuf,
}

/// One journal entry: one line of `identity key upload_id pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub identity: String,
    pub key: String,
    pub upload_id: String,
    pub pid: u32,
    file: std::path::PathBuf,
}

impl Journal {
    /// `$XDG_CACHE_HOME/push-cache/s3-uploads` (or `~/.cache/...`); `None` without a home.
    pub(crate) fn default_location() -> Option<Self> {
        dirs::cache_dir().map(|d| Journal {
            dir: d.join("push-cache").join("s3-uploads"),
        })
    }

    /// Records an upload of `bucket` begun by this process; the returned path is removed
    /// by [`Journal::done`].
    pub(crate) fn begin(
        &self,
        bucket: &S3Bucket,
        key: &str,
        upload_id: &str,
    ) -> Option<std::path::PathBuf> {
        use sha2::Digest;
        std::fs::create_dir_all(&self.dir).ok()?;
        let digest = sha2::Sha256::digest(format!("{}\n{upload_id}", bucket.identity));
        // Nix's own base-32, as in store paths: 32 characters for 20 bytes.
        let file = self.dir.join(crate::nix32::encode(&digest[..20]));
        let line = format!(
            "{} {} {} {}\n",
            bucket.identity,
            key,
            upload_id,
            std::process::id()
        );
        // Keys and ids are URL-safe, without spaces; anything else is not journalled.
        if line.split(' ').count() != 4 {
            return None;
        }
        std::fs::write(&file, line).ok()?;
        Some(file)
    }

    pub(crate) fn done(&self, entry: Option<std::path::PathBuf>) {
        if let Some(f) = entry {
            let _ = std::fs::remove_file(f);
        }
    }

    /// The uploads of `bucket` recorded by processes that are gone.
    pub(crate) fn abandoned(&self, bucket: &S3Bucket) -> Vec<Pending> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let file = e.path();
            let Ok(Some(text)) =
                crate::fsutil::read_regular(&file, 64 * 1024, crate::fsutil::Follow::NoSymlinks)
                    .map(|f| f.map(|f| String::from_utf8_lossy(&f.bytes).into_owned()))
            else {
                continue;
            };
            let parts: Vec<&str> = text.trim().split(' ').collect();
            let [identity, key, upload_id, pid] = parts[..] else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if identity != bucket.identity || alive(pid) {
                continue;
            }
            out.push(Pending {
                identity: identity.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                pid,
                file,
            });
        }
        out
    }

    /// Forgets an entry (its upload was aborted, or S3 no longer knows it).
    pub(crate) fn forget(&self, p: &Pending) {
        let _ = std::fs::remove_file(&p.file);
    }
}

fn alive(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => false,
    }
}

/// The upload id in a CreateMultipartUpload answer.
pub(crate) fn upload_id(answer: &str) -> Option<String> {
    rusty_s3::actions::CreateMultipartUpload::parse_response(answer)
        .ok()
        .map(|r| r.upload_id().to_owned())
}

/// `Code: Message` of an S3 error document, for messages (`None` when it is not one);
/// the server's words made safe ([`crate::output::untrusted`]).
pub(crate) fn error_summary(body: &str) -> Option<String> {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&format!("</{name}>"))?;
        Some(crate::output::untrusted(&body[start..start + len], 200))
    };
    let code = field("Code")?;
    Some(match field("Message") {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ => code,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uris_read_as_nix_reads_them() {
        let u = S3Uri::parse("s3://team-cache?region=eu-west-1").unwrap();
        assert_eq!(
            (
                u.bucket.as_str(),
                u.region.as_str(),
                u.endpoint,
                u.path_style
            ),
            ("team-cache", "eu-west-1", None, false)
        );
        let u = S3Uri::parse("s3://c?endpoint=127.0.0.1:9000&scheme=http&profile=ci").unwrap();
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!((u.region.as_str(), u.path_style), ("us-east-1", true));
        assert_eq!(u.profile.as_deref(), Some("ci"));
        assert_eq!(u.part_size, None);
        let u = S3Uri::parse("s3://c?multipart-chunk-size=5242880").unwrap();
        assert_eq!(u.part_size, Some(5_242_880));
        let u = S3Uri::parse("s3://c?endpoint=https://r2.example.com/&addressing-style=virtual")
            .unwrap();
        assert_eq!(
            (u.endpoint.as_deref(), u.path_style),
            (Some("https://r2.example.com"), false)
        );
        for bad in [
            "s3://",
            "s3://Upper",
            "s3://c?scheme=ftp",
            "s3://c?addressing-style=x",
        ] {
            assert!(S3Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profiles_of_a_credentials_file() {
        let text = "[default]\naws_access_key_id = AK1\naws_secret_access_key = S1\n\n\
                    # comment\n[ci]\naws_access_key_id=AK2\naws_secret_access_key=S2\naws_session_token = T2\n\
                    [half]\naws_access_key_id = AK3\n";
        assert_eq!(
            parse_profile(text, "default"),
            Some(("AK1".into(), "S1".into(), None))
        );
        assert_eq!(
            parse_profile(text, "ci"),
            Some(("AK2".into(), "S2".into(), Some("T2".into())))
        );
        assert_eq!(parse_profile(text, "half"), None);
        assert_eq!(parse_profile(text, "none"), None);
    }

    #[test]
    fn signed_urls_are_path_style_with_an_endpoint() {
        let uri = S3Uri::parse("s3://nix?endpoint=127.0.0.1:9000&scheme=http").unwrap();
        let b =
            S3Bucket::with_credentials(&uri, Some(rusty_s3::Credentials::new("AKID", "SECRET")))
                .unwrap();
        let put = b.put("nar/x.nar.zst");
        assert!(
            put.starts_with("http://127.0.0.1:9000/nix/nar/x.nar.zst?"),
            "{put}"
        );
        assert!(put.contains("X-Amz-Signature="), "{put}");
        assert!(!put.contains("SECRET"));
        assert_eq!(b.shown("x.narinfo"), "s3://nix/x.narinfo");
        let aws =
            S3Bucket::with_credentials(&S3Uri::parse("s3://nix?region=eu-west-1").unwrap(), None)
                .unwrap();
        assert!(
            aws.get("nix-cache-info")
                .starts_with("https://nix.s3.eu-west-1.amazonaws.com/nix-cache-info")
        );
    }

    #[test]
    fn error_documents_are_summarised() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        assert_eq!(
            error_summary(body).unwrap(),
            "SignatureDoesNotMatch: The request signature we calculated does not match"
        );
        assert_eq!(error_summary("plain text"), None);
    }
}
