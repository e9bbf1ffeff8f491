//! NAR compression as binary caches name it: `zstd` (`.nar.zst`), `xz` (`.nar.xz`) and
//! `none` (`.nar`), with a level and threads.
//!
//! Nix writes `xz` by default (about 0.5 MiB/s per core on real binaries: a 134 MiB NAR
//! took 59 s here) and reads all three from 2.8 on. zstd at its fast levels compresses
//! hundreds of MiB/s per core for about 10% more bytes than xz, which is why push-cache
//! defaults to zstd level 3, multithreaded for big NARs. A store URI's `?compression=`
//! (and `?compression-level=`) is read the way Nix reads it.

use std::io::{self, Write};

/// A NAR compression method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// zstd, `.nar.zst`: push-cache's default; levels 1-19, default 3.
    Zstd,
    /// xz, `.nar.xz`: what Nix writes by default; levels 0-9, default 6.
    Xz,
    /// Uncompressed, `.nar`; level 0 only.
    None,
}

impl Method {
    /// The value of a narinfo's `Compression:` line.
    pub(crate) fn narinfo_name(self) -> &'static str {
        match self {
            Method::Zstd => "zstd",
            Method::Xz => "xz",
            Method::None => "none",
        }
    }

    /// The NAR file's extension in the cache (`nar/<filehash><ext>`).
    pub fn extension(self) -> &'static str {
        match self {
            Method::Zstd => ".nar.zst",
            Method::Xz => ".nar.xz",
            Method::None => ".nar",
        }
    }

    /// The level used when none is given.
    pub(crate) fn default_level(self) -> i32 {
        match self {
            Method::Zstd => 3,
            Method::Xz => 6,
            Method::None => 0,
        }
    }

    /// The levels a method accepts.
    pub(crate) fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Method::Zstd => 1..=19,
            Method::Xz => 0..=9,
            Method::None => 0..=0,
        }
    }

    /// Reads `zstd`, `xz` or `none` (as flags and `?compression=` write them).
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(Method::Zstd),
            "xz" => Ok(Method::Xz),
            "none" => Ok(Method::None),
            other => Err(format!(
                "`{other}` is not a compression push-cache writes: use zstd (the default), xz or none"
            )),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.narinfo_name())
    }
}

/// A method with its level and how many threads one NAR may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub(crate) method: Method,
    /// A level within [`Method::levels`].
    pub(crate) level: i32,
    /// Worker threads for one stream (zstd and xz split big inputs into blocks);
    /// 1 compresses on the calling thread.
    pub(crate) threads: u32,
}

impl Settings {
    /// `method` at `level` (the method's default when `None`), on one thread; an error
    /// when the level is out of the method's range, naming the range.
    pub fn new(method: Method, level: Option<i32>) -> Result<Self, String> {
        let level = level.unwrap_or(method.default_level());
        if !method.levels().contains(&level) {
            return Err(format!(
                "compression level {level} is out of range for {method}: use {}..={}",
                method.levels().start(),
                method.levels().end()
            ));
        }
        Ok(Settings {
            method,
            level,
            threads: 1,
        })
    }

    /// The same settings with `threads` workers per stream.
    pub(crate) fn with_threads(mut self, threads: u32) -> Self {
        self.threads = threads.max(1);
        self
    }
}

/// `?compression=` and `?compression-level=` of a store URI, when present.
pub(crate) fn from_store_uri(uri: &str) -> Result<Option<Settings>, String> {
    let method = crate::url::store_param(uri, "compression")
        .map(Method::parse)
        .transpose()?;
    let level = crate::url::store_param(uri, "compression-level")
        .map(|v| {
            v.parse::<i32>()
                .map_err(|_| format!("`compression-level={v}` in the store URI is not a number"))
        })
        .transpose()?;
    match method {
        Some(m) => Settings::new(m, level).map(Some),
        None if level.is_some() => Settings::new(Method::Xz, level).map(Some),
        None => Ok(None),
    }
}

/// A compressing writer; [`Encoder::finish`] flushes the end of the stream and gives
/// the inner writer back.
pub(crate) enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
    None(W),
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Zstd(_) => "Encoder::Zstd",
            Encoder::Xz(_) => "Encoder::Xz",
            Encoder::None(_) => "Encoder::None",
        })
    }
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(inner: W, s: Settings) -> io::Result<Self> {
        Ok(match s.method {
            Method::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(inner, s.level)?;
                if s.threads > 1 {
                    e.multithread(s.threads)?;
                }
                Encoder::Zstd(e)
            }
            Method::Xz => {
                let stream = if s.threads > 1 {
                    liblzma::stream::MtStreamBuilder::new()
                        .preset(s.level as u32)
                        .threads(s.threads)
                        .check(liblzma::stream::Check::Crc64)
                        .encoder()
                        .map_err(io::Error::other)?
                } else {
                    liblzma::stream::Stream::new_easy_encoder(
                        s.level as u32,
                        liblzma::stream::Check::Crc64,
                    )
                    .map_err(io::Error::other)?
                };
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(inner, stream))
            }
            Method::None => Encoder::None(inner),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn round_trip(s: Settings) {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut e = Encoder::new(Vec::new(), s).unwrap();
        e.write_all(&data).unwrap();
        let packed = e.finish().unwrap();
        let mut back = Vec::new();
        match s.method {
            Method::Zstd => {
                zstd::stream::read::Decoder::new(&packed[..])
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Method::Xz => {
                liblzma::read::XzDecoder::new(&packed[..])
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Method::None => back = packed.clone(),
        }
        assert_eq!(back, data, "{s:?}");
        if s.method != Method::None {
            assert!(packed.len() < data.len() / 4, "{s:?}: {}", packed.len());
        }
    }

    #[test]
    fn every_method_round_trips_single_and_multithreaded() {
        for m in [Method::Zstd, Method::Xz, Method::None] {
            let s = Settings::new(m, None).unwrap();
            round_trip(s);
            round_trip(s.with_threads(2));
        }
    }

    #[test]
    fn store_uri_parameters_and_levels() {
        assert_eq!(from_store_uri("file:///c").unwrap(), None);
        let s = from_store_uri("file:///c?compression=zstd&compression-level=7")
            .unwrap()
            .unwrap();
        assert_eq!((s.method, s.level), (Method::Zstd, 7));
        let s = from_store_uri("https://h?compression=none")
            .unwrap()
            .unwrap();
        assert_eq!(s.method, Method::None);
        assert!(from_store_uri("file:///c?compression=brotli").is_err());
        assert!(Settings::new(Method::Zstd, Some(30)).is_err());
        assert!(Settings::new(Method::Xz, Some(9)).is_ok());
        assert_eq!(Method::Zstd.extension(), ".nar.zst");
        assert_eq!(Method::parse("xz").unwrap().narinfo_name(), "xz");
    }
}
