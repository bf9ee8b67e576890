//! Opt-in frame-time log: with `QB_FRAME_LOG=PATH` the app records, per frame, its own work
//! (draining worker events, drawing the views, applying actions; not egui's tessellation or the
//! GPU) in milliseconds, with the time since start and the number of jobs in flight. The CSV is
//! rewritten through `fsutil::write_atomic` about once a second and when the app closes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The environment variable naming the log file.
pub const FRAME_LOG_ENV: &str = "QB_FRAME_LOG";

/// How often the log file is rewritten.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Frames kept at most (about half an hour at 60 fps); later frames are not recorded.
const MAX_FRAMES: usize = 100_000;

/// One frame's record.
#[derive(Debug, Clone, Copy)]
struct Frame {
    since_start_ms: f64,
    app_ms: f64,
    jobs: usize,
}

/// The per-frame timings collected so far.
#[derive(Debug)]
pub struct FrameLog {
    path: PathBuf,
    start: Instant,
    frames: Vec<Frame>,
    /// Work of the current frame measured so far (`logic` runs before `ui`).
    pending_ms: f64,
    last_flush: Instant,
    /// Set after a failed write, so the error is reported once.
    failed: bool,
}

impl FrameLog {
    /// A log when [`FRAME_LOG_ENV`] names a file.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(FRAME_LOG_ENV).filter(|p| !p.is_empty())?;
        let now = Instant::now();
        Some(Self {
            path: PathBuf::from(path),
            start: now,
            frames: Vec::new(),
            pending_ms: 0.0,
            last_flush: now,
            failed: false,
        })
    }

    /// Adds work done since `since` to the current frame.
    pub fn add(&mut self, since: Instant) {
        self.pending_ms += since.elapsed().as_secs_f64() * 1000.0;
    }

    /// Ends the current frame (its work measured up to `since`'s elapsed time included).
    pub fn end_frame(&mut self, since: Instant, jobs: usize) {
        self.add(since);
        if self.frames.len() < MAX_FRAMES {
            let since_start_ms = self.start.elapsed().as_secs_f64() * 1000.0;
            self.frames.push(Frame { since_start_ms, app_ms: self.pending_ms, jobs });
        }
        self.pending_ms = 0.0;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Rewrites the log file; a failure is reported once on stderr (the app goes on).
    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        let mut csv = String::from("since_start_ms,app_ms,jobs\n");
        for f in &self.frames {
            let _ = writeln!(csv, "{:.3},{:.3},{}", f.since_start_ms, f.app_ms, f.jobs);
        }
        if let Err(e) = quantbench_core::fsutil::write_atomic(&self.path, csv.as_bytes())
            && !self.failed
        {
            self.failed = true;
            eprintln!("cannot write the frame log: {e}");
        }
    }
}

impl Drop for FrameLog {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_written_as_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("frames.csv");
        let start = Instant::now();
        let mut log = FrameLog {
            path: path.clone(),
            start,
            frames: Vec::new(),
            pending_ms: 0.0,
            last_flush: start,
            failed: false,
        };
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(3));
        log.add(t);
        log.end_frame(Instant::now(), 2);
        drop(log);
        let text = std::fs::read_to_string(&path).expect("written on drop");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "since_start_ms,app_ms,jobs");
        let fields: Vec<&str> = lines[1].split(',').collect();
        let app_ms: f64 = fields[1].parse().expect("number");
        assert!(app_ms >= 3.0, "{app_ms}");
        assert_eq!(fields[2], "2");
        assert_eq!(lines.len(), 2);
    }
}
