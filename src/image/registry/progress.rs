//! What a pull reports while it runs: one progress bar per layer on a terminal, plain lines
//! (`<short digest>: downloading`, `…: done`) when stderr is not one, nothing when quiet.

use super::RegistryError;
use crate::image::digest::Digest;
use crate::image::reference::Reference;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

/// Receives a pull's events. Layers are named by their blob digest. Called from several download
/// threads at once.
pub trait PullObserver: Send + Sync {
    /// The manifest is being resolved.
    fn pulling(&self, _reference: &Reference) {}
    /// The layer is already in the store and is not downloaded.
    fn layer_exists(&self, _blob: &Digest) {}
    /// The layer will be downloaded.
    fn layer_queued(&self, _blob: &Digest, _size: u64) {}
    /// Its download (or a retry of it) started.
    fn layer_started(&self, _blob: &Digest, _size: u64) {}
    /// `done` bytes of it have arrived.
    fn layer_progress(&self, _blob: &Digest, _done: u64) {}
    /// Its download failed and is retried.
    fn layer_retrying(&self, _blob: &Digest, _error: &RegistryError) {}
    /// It is downloaded, verified and unpacked into the store.
    fn layer_done(&self, _blob: &Digest) {}
    /// It failed for good (the pull fails).
    fn layer_failed(&self, _blob: &Digest) {}
    /// The pull ended, successfully or not: clear any display.
    fn finished(&self) {}
}

/// How `berth pull` shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, else lines.
    Auto,
    Bars,
    Lines,
    Quiet,
}

impl ProgressMode {
    /// An observer writing to stderr in this mode.
    pub fn observer(self) -> Box<dyn PullObserver> {
        match self {
            ProgressMode::Auto if io::stderr().is_terminal() => Box::new(TerminalProgress::new()),
            ProgressMode::Auto | ProgressMode::Lines => {
                Box::new(LineProgress::new(Box::new(io::stderr())))
            }
            ProgressMode::Bars => Box::new(TerminalProgress::new()),
            ProgressMode::Quiet => Box::new(NoProgress),
        }
    }
}

/// Reports nothing.
pub struct NoProgress;

impl PullObserver for NoProgress {}

/// One line per event, for logs and pipes.
pub struct LineProgress {
    out: Mutex<Box<dyn Write + Send>>,
}

impl LineProgress {
    pub fn new(out: Box<dyn Write + Send>) -> LineProgress {
        LineProgress {
            out: Mutex::new(out),
        }
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl PullObserver for LineProgress {
    fn pulling(&self, r: &Reference) {
        self.line(format_args!("{}: pulling from {}", what_of(r), r.name()));
    }
    fn layer_exists(&self, blob: &Digest) {
        self.line(format_args!("{}: already exists", blob.short()));
    }
    fn layer_started(&self, blob: &Digest, size: u64) {
        self.line(format_args!(
            "{}: downloading ({})",
            blob.short(),
            human_bytes(size)
        ));
    }
    fn layer_retrying(&self, blob: &Digest, error: &RegistryError) {
        self.line(format_args!(
            "{}: retrying after error: {error}",
            blob.short()
        ));
    }
    fn layer_done(&self, blob: &Digest) {
        self.line(format_args!("{}: done", blob.short()));
    }
    fn layer_failed(&self, blob: &Digest) {
        self.line(format_args!("{}: failed", blob.short()));
    }
}

/// The tag, or the digest, that a pull asked for.
fn what_of(r: &Reference) -> String {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => d.to_string(),
        (Some(t), None) => t.clone(),
        (None, None) => String::new(),
    }
}

/// `1.5 MB` style sizes, as docker shows them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// One bar per layer on stderr.
pub struct TerminalProgress {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    style: ProgressStyle,
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalProgress {
    pub fn new() -> TerminalProgress {
        let style =
            ProgressStyle::with_template("{prefix}: {msg:<16} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        TerminalProgress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            style,
        }
    }

    fn with_bar(&self, blob: &Digest, f: impl FnOnce(&ProgressBar)) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = bars.get(blob) {
            f(b);
        }
    }

    /// A line above the bars (plainly, while there are none: indicatif would not end it).
    fn println(&self, line: String) {
        if self
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn add_bar(&self, blob: &Digest, size: u64, message: &'static str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(self.style.clone());
        bar.set_prefix(blob.short().to_string());
        bar.set_message(message);
        self.bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(blob.clone(), bar.clone());
        bar
    }
}

impl PullObserver for TerminalProgress {
    fn pulling(&self, r: &Reference) {
        self.println(format!("{}: pulling from {}", what_of(r), r.name()));
    }
    fn layer_exists(&self, blob: &Digest) {
        self.println(format!("{}: already exists", blob.short()));
    }
    fn layer_queued(&self, blob: &Digest, size: u64) {
        self.add_bar(blob, size, "waiting");
    }
    fn layer_started(&self, blob: &Digest, _size: u64) {
        self.with_bar(blob, |b| {
            b.set_position(0);
            b.set_message("downloading");
        });
    }
    fn layer_progress(&self, blob: &Digest, done: u64) {
        self.with_bar(blob, |b| b.set_position(done));
    }
    fn layer_retrying(&self, blob: &Digest, error: &RegistryError) {
        self.println(format!("{}: retrying after error: {error}", blob.short()));
        self.with_bar(blob, |b| b.set_message("retrying"));
    }
    fn layer_done(&self, blob: &Digest) {
        self.with_bar(blob, |b| {
            b.set_position(b.length().unwrap_or(0));
            b.set_message("done");
            b.finish();
        });
    }
    fn layer_failed(&self, blob: &Digest) {
        self.with_bar(blob, |b| {
            b.set_message("failed");
            b.abandon();
        });
    }
    fn finished(&self) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        for b in bars.values().filter(|b| !b.is_finished()) {
            b.abandon();
        }
        // indicatif leaves the cursor at the end of the last bar: end that line so what the
        // command prints next starts on its own.
        if !bars.is_empty() {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_name_the_short_digest() {
        let buf = Buf::default();
        let p = LineProgress::new(Box::new(buf.clone()));
        let d = Digest::of(b"layer");
        p.pulling(&Reference::parse("127.0.0.1:5000/app:v1").unwrap());
        p.layer_exists(&d);
        p.layer_started(&d, 1500);
        p.layer_progress(&d, 10);
        p.layer_done(&d);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let s = d.short();
        assert_eq!(
            text,
            format!("v1: pulling from 127.0.0.1:5000/app\n{s}: already exists\n{s}: downloading (1.5 kB)\n{s}: done\n")
        );
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(2_500_000), "2.5 MB");
    }
}
