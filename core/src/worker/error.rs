//! Errors of the worker: sending a command ([`WorkerError`]) and running a job (`JobError`,
//! reported to the app as the message of a `Failed` event).

/// Why a command could not be handed to the worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// The command queue is full: the worker is behind by `capacity` commands.
    #[error("the worker is busy: {capacity} commands are already waiting")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The worker thread has stopped (after `Shutdown`).
    #[error("the worker has stopped")]
    Stopped,
    /// The operating system refused to start a thread.
    #[error("cannot start the worker thread: {0}")]
    Spawn(String),
}

/// Why a job did not produce its result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// State the job needs is missing; the message names it and what to do.
    #[error("{0}")]
    Missing(&'static str),
    /// The core returned an error (its `Cancelled` is mapped to [`JobError::Cancelled`]).
    #[error(transparent)]
    Core(crate::Error),
    /// The job saw its cancel flag.
    #[error("cancelled")]
    Cancelled,
    /// The job panicked; the message is the panic's.
    #[error("internal error: {0}")]
    Panic(String),
    /// The job thread could not be started.
    #[error("cannot start a job thread: {0}")]
    Spawn(String),
}

impl From<crate::Error> for JobError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Cancelled => Self::Cancelled,
            e => Self::Core(e),
        }
    }
}

pub(crate) use crate::panics::message as panic_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered() {
        let p = std::panic::catch_unwind(|| panic!("static")).expect_err("panics");
        assert_eq!(panic_message(&*p), "static");
        let n = 3;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).expect_err("panics");
        assert_eq!(JobError::Panic(panic_message(&*p)).to_string(), "internal error: formatted 3");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5_u8)).expect_err("panics");
        assert_eq!(panic_message(&*p), "a panic without a message");
    }

    #[test]
    fn core_cancellation_is_a_cancellation() {
        assert!(matches!(JobError::from(crate::Error::Cancelled), JobError::Cancelled));
        let e = JobError::from(crate::Error::Config("bad".into()));
        assert_eq!(e.to_string(), "invalid configuration: bad");
    }
}
