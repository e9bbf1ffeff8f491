//! Synthetic Nix stores for the cache-analytics tests: a Rust port of
//! `shared/tools/mkstore.py` (same schema, same graph shape: hub libraries referenced by
//! most paths, layered references, `.drv` and `-source` paths, self references, log-normal
//! sizes, GC roots as `gcroots/auto/root-K` symlinks), with its own deterministic RNG so
//! the tests need neither Python nor the shared directory. Nix opens the result as
//! `--store DIR`. With `materialize`, every path also gets an (empty) directory under
//! `DIR/nix/store`, because `nix-store --gc --print-dead` only reports paths it finds on
//! disk.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

const ALPHA: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
const NAMES: &[&str] = &[
    "glibc",
    "gcc",
    "openssl",
    "zlib",
    "python3",
    "perl",
    "bash",
    "coreutils",
    "rustc",
    "cargo",
    "llvm",
    "ncurses",
    "libffi",
    "sqlite",
    "curl",
    "git",
    "nodejs",
    "boost",
    "icu",
    "systemd",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn hash(rng: &mut Rng) -> String {
    (0..32)
        .map(|_| ALPHA[rng.below(32) as usize] as char)
        .collect()
}

/// A synthetic store made by [`make`].
pub struct Synthetic {
    pub paths: Vec<String>,
    pub sizes: Vec<u64>,
    /// `(referrer index, reference index)`, self references included.
    pub refs: Vec<(usize, usize)>,
    pub roots: Vec<usize>,
}

/// Writes `DIR/nix/var/nix/db/db.sqlite` with `n` paths and `roots` GC roots.
pub fn make(dir: &Path, n: usize, seed: u64, roots: usize, materialize: bool) -> Synthetic {
    let db_dir = dir.join("nix/var/nix/db");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::create_dir_all(dir.join("nix/store")).unwrap();
    let db = db_dir.join("db.sqlite");
    let _ = std::fs::remove_file(&db);
    let mut c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(include_str!("../fixtures/analytics/nix-schema-10.sql"))
        .unwrap();
    std::fs::write(db_dir.join("schema"), "10").unwrap();
    let mut rng = Rng(seed);
    let mut s = Synthetic {
        paths: Vec::new(),
        sizes: Vec::new(),
        refs: Vec::new(),
        roots: Vec::new(),
    };
    let hubs = n.min(40);
    for i in 0..n {
        let kind = rng.unit();
        let base = format!(
            "{}-{}.{}",
            NAMES[rng.below(NAMES.len() as u64) as usize],
            1 + rng.below(9),
            rng.below(31)
        );
        let name = if kind < 0.35 {
            format!("{base}.drv")
        } else if kind < 0.45 {
            format!("{base}-source")
        } else {
            base
        };
        s.paths
            .push(format!("/nix/store/{}-{name}", hash(&mut rng)));
        s.sizes.push((11.0 + 2.2 * rng.normal()).exp() as u64 + 120);
        if i > 0 {
            let k = ((1.0 / rng.unit().powf(1.0 / 1.3)) as usize).min(i);
            let mut targets = std::collections::BTreeSet::new();
            for _ in 0..k {
                if rng.unit() < 0.6 {
                    targets.insert(rng.below(hubs.min(i) as u64) as usize);
                } else {
                    let lo = i.saturating_sub(5000);
                    targets.insert(lo + rng.below((i - lo) as u64) as usize);
                }
            }
            s.refs.extend(targets.into_iter().map(|t| (i, t)));
        }
        if rng.unit() < 0.3 {
            s.refs.push((i, i));
        }
    }
    let tx = c.transaction().unwrap();
    {
        let mut ins = tx.prepare("insert into ValidPaths (id, path, hash, registrationTime, narSize) values (?,?,?,?,?)").unwrap();
        for (i, p) in s.paths.iter().enumerate() {
            // Ids with gaps, as a store that has been garbage collected has.
            ins.execute(rusqlite::params![
                (i * 3 + 1) as i64,
                p,
                format!("sha256:{:064x}", i),
                1_700_000_000 + i as i64,
                s.sizes[i] as i64
            ])
            .unwrap();
        }
        let mut ins = tx
            .prepare("insert or ignore into Refs values (?,?)")
            .unwrap();
        for &(a, b) in &s.refs {
            ins.execute([(a * 3 + 1) as i64, (b * 3 + 1) as i64])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    drop(c);
    let gc = dir.join("nix/var/nix/gcroots/auto");
    std::fs::create_dir_all(&gc).unwrap();
    let lo = n - n / 5;
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < roots.min(n - lo) {
        picked.insert(lo + rng.below((n - lo) as u64) as usize);
    }
    for (k, &i) in picked.iter().enumerate() {
        std::os::unix::fs::symlink(&s.paths[i], gc.join(format!("root-{k}"))).unwrap();
    }
    s.roots = picked.into_iter().collect();
    if materialize {
        for p in &s.paths {
            let real = dir.join(p.trim_start_matches('/'));
            if p.ends_with(".drv") {
                // Nix reads a `.drv` named on the command line as a derivation file.
                std::fs::write(real, "Derive([(\"out\",\"/nix/store/00000000000000000000000000000000-x\",\"\",\"\")],[],[],\"x\",\"/bin/sh\",[],[])").unwrap();
            } else {
                std::fs::create_dir_all(real).unwrap();
            }
        }
    }
    s
}
