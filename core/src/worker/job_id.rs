//! Job ids: every command and every job the worker runs has one, and every event carries it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The id of a job. Ids increase: the handle assigns one to every command it sends and the worker
/// assigns one to every evaluation a change triggers, from the same counter, so a larger id is a
/// later job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// Hands out job ids; shared by the handle and the worker thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobIds(Arc<AtomicU64>);

impl JobIds {
    /// The next id (the first is 1).
    pub(crate) fn next(&self) -> JobId {
        JobId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_across_clones() {
        let ids = JobIds::default();
        let other = ids.clone();
        assert_eq!(ids.next(), JobId(1));
        assert_eq!(other.next(), JobId(2));
        assert!(ids.next() > JobId(2));
        assert_eq!(JobId(7).to_string(), "job 7");
    }
}
