//! Panic capture: a panic hook that records, silently, the panics raised while a fuzz input
//! runs, and the repository frame that led to a panic raised inside std or a dependency.

use std::cell::RefCell;
use std::sync::Once;

use crate::repo_root;

thread_local! {
    pub(super) static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    pub(super) static PANICS: RefCell<Vec<PanicRecord>> = const { RefCell::new(Vec::new()) };
}

/// One panic seen by the hook.
#[derive(Debug)]
pub(super) struct PanicRecord {
    pub(super) message: String,
    pub(super) location: String,
    /// Captured (not yet symbolized: that is slow) when the location is in std or a dependency.
    pub(super) backtrace: Option<std::backtrace::Backtrace>,
}

impl PanicRecord {
    /// The first repository frame below the panic machinery, when there is a backtrace.
    pub(super) fn origin(&self) -> String {
        let Some(bt) = &self.backtrace else { return String::new() };
        let text = bt.to_string();
        let below = ["core::panicking::", "rust_begin_unwind", "std::panicking::begin_panic"]
            .iter()
            .filter_map(|m| text.rfind(m))
            .max()
            .map_or(text.as_str(), |i| &text[i..]);
        repo_frame(below).unwrap_or_default()
    }
}

fn repo_prefix() -> &'static str {
    static ROOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let r = repo_root();
        format!("{}/", r.canonicalize().unwrap_or(r).display())
    })
}

/// The first frame of a backtrace that lies in this repository (`core/src/data/npy.rs:178:9`),
/// for panics raised inside std or a dependency on behalf of repository code.
pub fn repo_frame(backtrace: &str) -> Option<String> {
    backtrace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .find_map(|p| p.strip_prefix(repo_prefix()))
        .map(str::to_string)
}

/// Strips the repository root from a `file:line:col` location.
pub(super) fn short_location(location: &str) -> String {
    location.strip_prefix(repo_prefix()).unwrap_or(location).to_string()
}

/// Installs (once) a panic hook that records the message and location of panics raised on a
/// thread that is running a fuzz input, silently; other panics go to the previous hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(std::cell::Cell::get) {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic payload>".into());
                let location = info.location().map_or_else(|| "<unknown>".into(), ToString::to_string);
                // Panics inside std (an overflowing `product()`, slice indexing) or a dependency:
                // keep a backtrace to name the repository frame that led there.
                let backtrace = location.starts_with('/').then(std::backtrace::Backtrace::force_capture);
                PANICS.with(|p| p.borrow_mut().push(PanicRecord { message, location, backtrace }));
            } else {
                previous(info);
            }
        }));
    });
}
