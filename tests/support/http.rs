//! A binary cache over HTTP on 127.0.0.1, served from a directory: GET and HEAD for Nix's
//! substituter, PUT for `nix copy --to http://...` uploads (what an nginx WebDAV or S3
//! front would do). Keep-alive, `Expect: 100-continue` and chunked bodies are handled,
//! since curl (inside Nix) uses all three. Every request is logged for assertions.
//!
//! Hostile modes ([`HttpCache::serve_hostile`]): a request can be answered with any
//! status and body, a 5 GB body, an endless chunked body or a body trickled a byte at a
//! time — each bounded (at most 8 GiB sent or 10 minutes per connection), and the bytes
//! sent are counted, so a test can check a client stopped reading.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Decides the status of a request before it is served normally; `None` = serve it.
pub type Fault = Arc<dyn Fn(&str, &str) -> Option<u16> + Send + Sync>;

/// A hostile answer to a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status with this body (e.g. `500` with an error page).
    Status(u16, Vec<u8>),
    /// `200` with this body.
    Body(Vec<u8>),
    /// `302 Found` to this location.
    Redirect(String),
    /// `200` with `Content-Length: 5000000000`, then bytes as fast as they are read.
    Huge,
    /// `200`, chunked, no length, never ending.
    Endless,
    /// `200` with `Content-Length: 60000` (under every cap, so only time cuts it); these
    /// bytes over and over, one every 200 ms.
    Trickle(Vec<u8>),
}

/// Decides a hostile answer to `(method, path)`; `None` = serve it normally.
pub type Hostile = Arc<dyn Fn(&str, &str) -> Option<Answer> + Send + Sync>;

pub struct HttpCache {
    pub url: String,
    pub root: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl HttpCache {
    /// Serves `root` read-only (PUT answers 405).
    pub fn serve(root: &Path) -> Self {
        Self::start(root, false, None, None)
    }

    /// Serves `root` and stores PUT uploads into it.
    pub fn serve_writable(root: &Path) -> Self {
        Self::start(root, true, None, None)
    }

    /// Like [`serve_writable`], with a fault injector (e.g. fail the first PUT of a NAR).
    pub fn serve_with_faults(root: &Path, writable: bool, fault: Fault) -> Self {
        Self::start(root, writable, Some(fault), None)
    }

    /// Serves `root`, but requests `hostile` picks get its [`Answer`].
    pub fn serve_hostile(root: &Path, writable: bool, hostile: Hostile) -> Self {
        Self::start(root, writable, None, Some(hostile))
    }

    /// Body bytes written by hostile answers so far.
    pub fn hostile_bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn start(root: &Path, writable: bool, fault: Option<Fault>, hostile: Option<Hostile>) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (root2, log2, stop2, sent2) =
            (root.to_owned(), log.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, log, fault) = (root2.clone(), log2.clone(), fault.clone());
                        let (hostile, sent, stop) = (hostile.clone(), sent2.clone(), stop2.clone());
                        std::thread::spawn(move || {
                            let h = hostile.as_ref().map(|h| (h, &*sent, &*stop));
                            let _ = handle(stream, &root, writable, &log, fault.as_ref(), h);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpCache {
            url,
            root: root.to_owned(),
            log,
            stop,
            sent,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }
}

impl Drop for HttpCache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A request's first line and the headers the server acts on.
struct Head {
    method: String,
    /// The target without its query.
    path: String,
    content_length: usize,
    chunked: bool,
    expect_continue: bool,
    close: bool,
}

impl Head {
    /// Whether a body follows (or would, after `100 Continue`).
    fn has_body(&self) -> bool {
        self.content_length > 0 || self.chunked
    }
}

/// Reads the request line and headers; `None` at the end of the connection or on a
/// request line that is not one.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_owned(), t.to_owned()),
        _ => return Ok(None),
    };
    let mut head = Head {
        method,
        path: target.split('?').next().unwrap_or("").to_owned(),
        content_length: 0,
        chunked: false,
        expect_continue: false,
        close: false,
    };
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(Some(head));
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => head.content_length = v.parse().unwrap_or(0),
            "transfer-encoding" => head.chunked = v.eq_ignore_ascii_case("chunked"),
            "expect" => head.expect_continue = v.eq_ignore_ascii_case("100-continue"),
            "connection" => head.close = v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
}

/// The answer from the directory: the injected status, a file for GET / HEAD, a file
/// written for PUT when writable; 400 for `..`, 404, 405 otherwise.
fn serve(
    root: &Path,
    writable: bool,
    head: &Head,
    injected: Option<u16>,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let file = root.join(head.path.trim_start_matches('/'));
    let safe = !head.path.split('/').any(|c| c == "..");
    Ok(match (injected, head.method.as_str()) {
        (Some(code), _) => (code, Vec::new()),
        _ if !safe => (400, Vec::new()),
        (None, "GET" | "HEAD") => match std::fs::read(&file) {
            Ok(b) if file.is_file() => (200, b),
            _ => (404, Vec::new()),
        },
        (None, "PUT") if writable => {
            std::fs::create_dir_all(file.parent().unwrap())?;
            let tmp = file.with_extension("upload-tmp");
            std::fs::write(&tmp, body)?;
            std::fs::rename(&tmp, &file)?;
            (201, Vec::new())
        }
        _ => (405, Vec::new()),
    })
}

/// Writes the status line, headers and (but for HEAD) the payload.
fn answer(
    out: &mut TcpStream,
    head: &Head,
    status: u16,
    payload: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
        payload.len(),
        if close { "Connection: close\r\n" } else { "" }
    )?;
    if head.method != "HEAD" {
        out.write_all(payload)?;
    }
    out.flush()
}

fn handle(
    stream: TcpStream,
    root: &Path,
    writable: bool,
    log: &Mutex<Vec<Request>>,
    fault: Option<&Fault>,
    hostile: Option<(&Hostile, &AtomicU64, &AtomicBool)>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    // Headers and body go in separate writes: without this, Nagle's algorithm and the
    // client's delayed ACK add 40 ms to every answer with a body.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    while let Some(head) = read_head(&mut reader)? {
        if let Some((h, sent, stop)) = hostile {
            if let Some(answer) = h(&head.method, &head.path) {
                // The request body (if any) is not wanted: with `Expect: 100-continue`
                // it never comes; otherwise it is read and dropped.
                if head.has_body() && !head.expect_continue {
                    read_body(&mut reader, head.content_length, head.chunked)?;
                }
                log.lock().unwrap().push(Request {
                    method: head.method.clone(),
                    path: head.path.clone(),
                    status: match &answer {
                        Answer::Status(c, _) => *c,
                        _ => 200,
                    },
                });
                return hostile_answer(&mut out, &head.method, answer, sent, stop);
            }
        }
        let injected = fault.and_then(|f| f(&head.method, &head.path));
        let mut body = Vec::new();
        if head.has_body() && (injected.is_none() || !head.expect_continue) {
            if head.expect_continue {
                out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            body = read_body(&mut reader, head.content_length, head.chunked)?;
        }
        let (status, payload) = serve(root, writable, &head, injected, &body)?;
        log.lock().unwrap().push(Request {
            method: head.method.clone(),
            path: head.path.clone(),
            status,
        });
        // A body refused before it was sent leaves the connection unusable.
        let close = head.close || (head.has_body() && body.is_empty());
        answer(&mut out, &head, status, &payload, close)?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn read_body(reader: &mut impl BufRead, len: usize, chunked: bool) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if !chunked {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
        return Ok(body);
    }
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut t = String::new();
                reader.read_line(&mut t)?;
                if t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Writes a hostile answer, then closes the connection. Bounded: at most 8 GiB of body
/// per connection, 10 minutes, or until the server is dropped.
fn hostile_answer(
    out: &mut TcpStream,
    method: &str,
    answer: Answer,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let until = std::time::Instant::now() + Duration::from_secs(600);
    let mut mine = 0u64;
    let mut send = |out: &mut TcpStream, b: &[u8]| -> std::io::Result<bool> {
        out.write_all(b)?;
        mine += b.len() as u64;
        sent.fetch_add(b.len() as u64, Ordering::SeqCst);
        Ok(mine < 8 << 30 && std::time::Instant::now() < until && !stop.load(Ordering::SeqCst))
    };
    let head = method == "HEAD";
    let chunk = vec![b'x'; 64 * 1024];
    match answer {
        Answer::Status(code, body) => {
            write!(
                out,
                "HTTP/1.1 {code} Status\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            if !head {
                send(out, &body)?;
            }
        }
        Answer::Redirect(to) => {
            write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
        Answer::Body(body) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            if !head {
                send(out, &body)?;
            }
        }
        Answer::Huge => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n")?;
            while !head && send(out, &chunk)? {}
        }
        Answer::Endless => {
            out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
            c.extend_from_slice(&chunk);
            c.extend_from_slice(b"\r\n");
            while !head && send(out, &c)? {}
        }
        Answer::Trickle(bytes) => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n")?;
            if !head && !bytes.is_empty() {
                for b in bytes.iter().cycle() {
                    std::thread::sleep(Duration::from_millis(200));
                    if !send(out, &[*b])? {
                        break;
                    }
                }
            }
        }
    }
    out.flush()
}
