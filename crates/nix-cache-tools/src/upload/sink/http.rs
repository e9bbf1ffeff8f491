//! An HTTP(S) cache that takes uploads by PUT.
use super::*;

/// An HTTP(S) cache that takes uploads by PUT (nginx WebDAV, most self-hosted caches).
#[derive(Debug)]
pub struct HttpSink {
    url: String,
    agent: ureq::Agent,
    retries: u32,
    has_cache_info: bool,
    headers: Vec<(String, String)>,
}

impl HttpSink {
    /// `has_cache_info`: whether the cache already has one (the caller asked).
    pub fn new(url: &str, jobs: usize, retries: u32, has_cache_info: bool) -> Self {
        let agent = upload_agent(jobs);
        HttpSink {
            url: url.trim_end_matches('/').to_owned(),
            agent,
            retries,
            has_cache_info,
            headers: Vec::new(),
        }
    }

    /// Sends this header with every upload (e.g. `Authorization` from the netrc).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn put<'b>(
        &self,
        rel: &str,
        content_type: &str,
        len: u64,
        body: &mut dyn FnMut() -> io::Result<Box<dyn Read + 'b>>,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let url = format!("{}/{rel}", self.url);
        retrying(
            &crate::redact::url(&url),
            self.retries,
            4,
            deadline,
            |left| {
                let reader = body().map_err(|e| SinkError::Io {
                    path: url.clone(),
                    source: e,
                })?;
                let mut req = self
                    .agent
                    .put(&url)
                    .timeout(left)
                    .set("Content-Type", content_type)
                    .set("Content-Length", &len.to_string());
                for (k, v) in &self.headers {
                    req = req.set(k, v);
                }
                let r = req.send(reader);
                Err(match r {
                    // The answer must end too (within the time left): a server that never
                    // finishes answering has not confirmed the upload.
                    Ok(resp) if !(200..300).contains(&resp.status()) => SinkError::Status {
                        url: crate::redact::url(&url),
                        status: resp.status(),
                        body: Some(match resp.header("Location") {
                            Some(to) => format!(
                                "the cache redirected the upload to {}; use that URL",
                                crate::output::untrusted(&crate::redact::url(to), 300)
                            ),
                            None => "the upload was not accepted (not a 2xx answer)".to_owned(),
                        }),
                    },
                    Ok(resp) => {
                        let mut sinkhole = Vec::new();
                        match resp
                            .into_reader()
                            .take(64 * 1024)
                            .read_to_end(&mut sinkhole)
                        {
                            Ok(_) => return Ok(()),
                            Err(e) => SinkError::Transport {
                                url: crate::redact::url(&url),
                                reason: format!("the answer to the upload did not end: {e}"),
                            },
                        }
                    }
                    Err(ureq::Error::Status(status, resp)) => {
                        let mut first = String::new();
                        let _ = resp.into_reader().take(1024).read_to_string(&mut first);
                        // The server's words: never able to drive a terminal or a summary.
                        let line = first
                            .lines()
                            .find(|l| !l.trim().is_empty())
                            .map(|l| crate::output::untrusted(l.trim(), 200));
                        SinkError::Status {
                            url: crate::redact::url(&url),
                            status,
                            body: line,
                        }
                    }
                    Err(ureq::Error::Transport(t)) => SinkError::Transport {
                        url: crate::redact::url(&url),
                        reason: t.to_string(),
                    },
                })
            },
        )
    }
}

impl Sink for HttpSink {
    fn url(&self) -> &str {
        &self.url
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let len = spool.len;
        match &spool.file {
            Some(f) => {
                let path = f.path().to_owned();
                self.put(
                    rel,
                    content_type,
                    len,
                    &mut || Ok(Box::new(std::fs::File::open(&path)?)),
                    deadline,
                )
            }
            None => self.put(
                rel,
                content_type,
                len,
                &mut || Ok(Box::new(&spool.mem[..])),
                deadline,
            ),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.put(
            rel,
            content_type,
            bytes.len() as u64,
            &mut || Ok(Box::new(bytes)),
            deadline,
        )
    }

    fn ensure_cache_info(&self, store_dir: &str, deadline: Instant) -> Result<bool, SinkError> {
        put_cache_info(self, self.has_cache_info, store_dir, deadline)
    }
}
