//! An S3 bucket: presigned PUTs, multipart uploads for big NARs.
use super::*;

/// What an S3 request sends.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of the file at `path` from `offset` on (a part of a spooled NAR).
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(b) => Box::new(*b),
            Body::File { path, offset, len } => {
                use std::io::Seek;
                let mut f = std::fs::File::open(path)?;
                f.seek(io::SeekFrom::Start(*offset))?;
                Box::new(f.take(*len))
            }
        })
    }
}

/// An S3 bucket (`s3://`, see [`crate::s3`]): objects PUT through presigned URLs; a NAR
/// bigger than one part goes up as a multipart upload of `part_size` parts, one part at
/// a time, aborted when it fails. 429 and 503 ("SlowDown") answers are retried with a
/// growing pause, as are other 5xx answers and connection errors.
#[derive(Debug)]
pub(crate) struct S3Sink {
    bucket: std::sync::Arc<crate::s3::S3Bucket>,
    agent: ureq::Agent,
    retries: u32,
    has_cache_info: bool,
    part_size: u64,
    journal: Option<crate::s3::Journal>,
}

/// The smallest part S3 takes (all but the last part of an upload).
const S3_MIN_PART: u64 = 5 * 1024 * 1024;

impl S3Sink {
    pub(crate) fn new(
        bucket: std::sync::Arc<crate::s3::S3Bucket>,
        jobs: usize,
        retries: u32,
        has_cache_info: bool,
        part_size: u64,
    ) -> Self {
        let agent = upload_agent(jobs);
        S3Sink {
            bucket,
            agent,
            retries,
            has_cache_info,
            part_size: part_size.max(S3_MIN_PART),
            journal: None,
        }
    }

    /// Records the multipart uploads it starts there (see [`crate::s3::Journal`]).
    pub(crate) fn with_journal(mut self, journal: Option<crate::s3::Journal>) -> Self {
        self.journal = journal;
        self
    }

    /// Aborts the multipart uploads to this bucket that pushes from this machine began
    /// and could not finish (killed); how many. One that S3 no longer knows is forgotten.
    pub(crate) fn abort_abandoned(&self, deadline: Instant) -> usize {
        let Some(journal) = &self.journal else {
            return 0;
        };
        let mut aborted = 0;
        for p in journal.abandoned(&self.bucket) {
            match self.call(
                &p.key,
                "DELETE",
                &|| self.bucket.abort_multipart(&p.key, &p.upload_id),
                None,
                &Body::Empty,
                deadline,
            ) {
                Ok(_) => {
                    aborted += 1;
                    journal.forget(&p);
                }
                Err(SinkError::Status { status: 404, .. }) => journal.forget(&p),
                Err(_) => {}
            }
        }
        aborted
    }

    /// One request, retried while the answer is transient; the ETag header and the
    /// (capped) body of a 2xx answer. `sign` makes a fresh presigned URL per attempt.
    fn call(
        &self,
        key: &str,
        method: &str,
        sign: &dyn Fn() -> String,
        content_type: Option<&str>,
        body: &Body<'_>,
        deadline: Instant,
    ) -> Result<(Option<String>, String), SinkError> {
        let shown = self.bucket.shown(key);
        retrying(&shown, self.retries, 5, deadline, |left| {
            let reader = body.reader().map_err(|e| SinkError::Io {
                path: shown.clone(),
                source: e,
            })?;
            let mut req = self
                .agent
                .request(method, &sign())
                .timeout(left)
                .set("Content-Length", &body.len().to_string());
            if let Some(t) = content_type {
                req = req.set("Content-Type", t);
            }
            let read_body = |resp: ureq::Response| {
                let mut text = String::new();
                let r = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
                r.map(|_| text)
            };
            Err(match req.send(reader) {
                Ok(resp) if (200..300).contains(&resp.status()) => {
                    let etag = resp.header("ETag").map(str::to_owned);
                    match read_body(resp) {
                        // CompleteMultipartUpload can fail with a 200 and an error document.
                        Ok(text) if text.contains("<Error>") => SinkError::Status {
                            url: shown.clone(),
                            status: 200,
                            body: crate::s3::error_summary(&text),
                        },
                        Ok(text) => return Ok((etag, text)),
                        Err(e) => SinkError::Transport {
                            url: shown.clone(),
                            reason: format!("the answer did not end: {e}"),
                        },
                    }
                }
                Ok(resp) => SinkError::Status {
                    url: shown.clone(),
                    status: resp.status(),
                    body: Some(
                        "the bucket answered with a redirect; check region= and endpoint="
                            .to_owned(),
                    ),
                },
                Err(ureq::Error::Status(status, resp)) => SinkError::Status {
                    url: shown.clone(),
                    status,
                    body: read_body(resp)
                        .ok()
                        .and_then(|t| crate::s3::error_summary(&t)),
                },
                Err(ureq::Error::Transport(t)) => SinkError::Transport {
                    url: shown.clone(),
                    // Never ureq's Display: it starts with the presigned URL.
                    reason: crate::binarycache::transport_reason(&t),
                },
            })
        })
    }

    fn put_object(
        &self,
        key: &str,
        body: &Body<'_>,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.call(
            key,
            "PUT",
            &|| self.bucket.put(key),
            Some(content_type),
            body,
            deadline,
        )
        .map(drop)
    }

    /// A multipart upload of the file at `path` (`len` bytes), aborted when a step fails.
    fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let (_, answer) = self.call(
            key,
            "POST",
            &|| self.bucket.create_multipart(key),
            Some(content_type),
            &Body::Empty,
            deadline,
        )?;
        let upload_id = crate::s3::upload_id(&answer).ok_or_else(|| SinkError::Transport {
            url: self.bucket.shown(key),
            reason: "the answer to CreateMultipartUpload has no UploadId".to_owned(),
        })?;
        let parts = || -> Result<(), SinkError> {
            let mut etags = Vec::new();
            let mut offset = 0;
            let mut number: u16 = 1;
            while offset < len {
                let part = self.part_size.min(len - offset);
                let body = Body::File {
                    path,
                    offset,
                    len: part,
                };
                let (etag, _) = self.call(
                    key,
                    "PUT",
                    &|| self.bucket.upload_part(key, number, &upload_id),
                    None,
                    &body,
                    deadline,
                )?;
                etags.push(etag.ok_or_else(|| SinkError::Transport {
                    url: self.bucket.shown(key),
                    reason: format!("the answer to part {number} has no ETag"),
                })?);
                offset += part;
                number = number.checked_add(1).ok_or_else(|| SinkError::Transport {
                    url: self.bucket.shown(key),
                    reason: "more than 65535 parts: raise ?multipart-chunk-size=".to_owned(),
                })?;
            }
            let (url, xml) = self.bucket.complete_multipart(key, &upload_id, &etags);
            self.call(
                key,
                "POST",
                &|| url.clone(),
                Some("application/xml"),
                &Body::Bytes(xml.as_bytes()),
                deadline,
            )
            .map(drop)
        };
        let entry = self
            .journal
            .as_ref()
            .and_then(|j| j.begin(&self.bucket, key, &upload_id));
        let result = parts();
        let finished = result.is_ok()
            || self
                // With a little time of its own: parts left behind cost storage.
                .call(
                    key,
                    "DELETE",
                    &|| self.bucket.abort_multipart(key, &upload_id),
                    None,
                    &Body::Empty,
                    Instant::now() + Duration::from_secs(10),
                )
                .is_ok();
        // An upload that could not be aborted stays in the journal for the next push.
        if finished {
            if let Some(j) = &self.journal {
                j.done(entry);
            }
        }
        result
    }
}

impl Sink for S3Sink {
    fn url(&self) -> &str {
        self.bucket.url()
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        match &spool.file {
            Some(f) if spool.len > self.part_size => {
                self.put_multipart(rel, f.path(), spool.len, content_type, deadline)
            }
            Some(f) => self.put_object(
                rel,
                &Body::File {
                    path: f.path(),
                    offset: 0,
                    len: spool.len,
                },
                content_type,
                deadline,
            ),
            None => self.put_object(rel, &Body::Bytes(&spool.mem), content_type, deadline),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.put_object(rel, &Body::Bytes(bytes), content_type, deadline)
    }

    fn ensure_cache_info(&self, store_dir: &str, deadline: Instant) -> Result<bool, SinkError> {
        put_cache_info(self, self.has_cache_info, store_dir, deadline)
    }
}
