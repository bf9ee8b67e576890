//! Panics caught at the boundary with third-party code (tract): [`catch`] runs a closure under
//! `catch_unwind` and marks the thread meanwhile, so that the app's panic hook can stay quiet for
//! a panic that becomes an ordinary error ([`is_caught`]) and report only the others.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

thread_local! {
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, turning a panic into `Err(payload)`; while it runs, [`is_caught`] is true on this
/// thread.
pub fn catch<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    result
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Whether a panic on this thread now would be caught by [`catch`] (and become an error).
pub fn is_caught() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_thread_while_catching() {
        assert!(!is_caught());
        assert!(catch(is_caught).expect("no panic"));
        let err = catch(|| -> u8 { panic!("boom") }).expect_err("caught");
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
        assert!(!is_caught(), "unmarked after a panic too");
    }
}
