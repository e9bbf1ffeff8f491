//! How push-cache shows a push's [`Progress`]: a bar on a terminal, one plain line per
//! path otherwise (both on stderr, so that stdout stays the summary or the JSON).

use nix_cache_tools::output::human_bytes;
use nix_cache_tools::push::Progress;
use nix_cache_tools::storepath;
use std::sync::OnceLock;

/// Draws progress; the bar is made on [`Progress::Begin`] when `bar` is asked for.
pub(crate) struct Display {
    bar: bool,
    drawn: OnceLock<indicatif::ProgressBar>,
}

impl Display {
    /// `bar`: draw a bar (stderr is a terminal and no `--json`), else plain lines.
    pub(crate) fn new(bar: bool) -> Self {
        Display {
            bar,
            drawn: OnceLock::new(),
        }
    }

    /// Shows one event; called from the upload threads.
    pub(crate) fn show(&self, p: Progress<'_>) {
        match p {
            Progress::Begin { total } if self.bar && total > 0 => {
                let _ = self.drawn.set(new_bar(total));
            }
            Progress::Begin { .. } => {}
            Progress::Started { path, nar_size } => match self.drawn.get() {
                Some(b) => b.set_message(short(path)),
                None => nix_cache_tools::output::eprintln(&format!(
                    "pushing {path} ({})",
                    human_bytes(nar_size)
                )),
            },
            Progress::Done { path, nar_size } => match self.drawn.get() {
                Some(b) => {
                    b.set_message(short(path));
                    b.inc(1);
                }
                None => nix_cache_tools::output::eprintln(&format!(
                    "pushed {path} ({})",
                    human_bytes(nar_size)
                )),
            },
            Progress::Failed { path, reason } => {
                self.line(&format!("FAILED {path}: {reason}"));
                if let Some(b) = self.drawn.get() {
                    b.inc(1);
                }
            }
            Progress::Note(text) => self.line(text),
            Progress::End => {
                if let Some(b) = self.drawn.get() {
                    b.finish_and_clear();
                }
            }
        }
    }

    /// A line above the bar (or on its own without one).
    fn line(&self, text: &str) {
        match self.drawn.get() {
            Some(b) => b.println(text),
            None => nix_cache_tools::output::eprintln(text),
        }
    }
}

fn new_bar(total: usize) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::with_draw_target(
        Some(total as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} paths {msg}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b
}

/// `hello-2.12` for `/nix/store/<hash>-hello-2.12`.
fn short(path: &str) -> String {
    storepath::name(path).unwrap_or(path).to_owned()
}
