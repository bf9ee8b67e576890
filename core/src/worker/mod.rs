//! The background worker: the app's only path to long-running work. It owns the session (model,
//! data sets, recipe, cached float reference), takes [`Command`]s and answers with [`Event`]s
//! over bounded channels, and runs long jobs one at a time on a job thread with progress,
//! cancellation, coalesced re-evaluation and panic containment.
//!
//! Threads: the handle lives on the app's (UI) thread and never blocks it; the worker thread
//! applies commands and schedules; the job thread runs one job. Each job has a cancel flag that
//! core checks every sample. A config change supersedes a running evaluation (its result is
//! dropped, `Superseded` is sent) and queues one evaluation of the newest revision, so a burst of
//! changes costs one or two evaluations, not one per change.

mod command;
mod error;
mod event;
mod job;
mod job_id;
mod progress;
mod scheduler;
mod session;
mod sink;
mod work;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use command::{Command, DebugCommand, ExportKind};
pub use error::WorkerError;
pub use event::{DataRole, Event, JobKind};
pub use job::{
    INJECTED_PANIC, STAGE_ALGORITHMS, STAGE_CALIBRATION, STAGE_FLOAT_REFERENCE, STAGE_LAYER_NOISE, STAGE_SEARCH_PATH,
    STAGE_SENSITIVITY, STAGE_TRANSFORM,
};
pub use job_id::JobId;
use job_id::JobIds;
pub use progress::PROGRESS_INTERVAL;
use scheduler::Scheduler;
use sink::EventSink;

/// Commands the worker may be behind by before [`WorkerHandle::send`] refuses more.
pub const COMMAND_CAPACITY: usize = 256;
/// Events the app may be behind by; then progress is dropped and results wait.
pub const EVENT_CAPACITY: usize = 256;

/// Starts workers.
#[derive(Debug, Clone, Copy)]
pub struct Worker;

/// Settings of a worker for its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Memory the incremental-evaluation cache may use, in MiB (0: the default, see
    /// [`EvalConfig::cache_budget_mib`](crate::simulate::EvalConfig)). What does not fit is not
    /// cached, and the next evaluation re-runs more of the graph (up to all of it): slower, same
    /// results.
    pub cache_budget_mib: usize,
}

impl Worker {
    /// Starts the worker thread. `waker` is called after every event is sent (the GUI passes a
    /// closure that calls `ctx.request_repaint()`); it must be quick and must not block.
    pub fn spawn(waker: Box<dyn Fn() + Send + Sync>) -> Result<WorkerHandle, WorkerError> {
        Self::spawn_with(waker, WorkerOptions::default())
    }

    /// As [`Worker::spawn`], with `options`.
    pub fn spawn_with(waker: Box<dyn Fn() + Send + Sync>, options: WorkerOptions) -> Result<WorkerHandle, WorkerError> {
        let (command_tx, command_rx) = crossbeam_channel::bounded(COMMAND_CAPACITY);
        let (event_tx, event_rx) = crossbeam_channel::bounded(EVENT_CAPACITY);
        let ids = JobIds::default();
        let stop = Arc::new(AtomicBool::new(false));
        let sink = EventSink::new(event_tx, Arc::from(waker), Arc::clone(&stop));
        let scheduler = Scheduler::new(command_rx, sink, ids.clone(), Arc::clone(&stop), options);
        let thread = std::thread::Builder::new()
            .name("quantbench-worker".into())
            .spawn(move || scheduler.run())
            .map_err(|e| WorkerError::Spawn(e.to_string()))?;
        Ok(WorkerHandle { commands: command_tx, events: event_rx, ids, stop, thread: Some(thread) })
    }
}

/// The app's end of a worker. Dropping it stops the worker like [`WorkerHandle::shutdown`].
#[derive(Debug)]
pub struct WorkerHandle {
    commands: Sender<(JobId, Command)>,
    events: Receiver<Event>,
    ids: JobIds,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Hands `command` to the worker without blocking and returns the id its events will carry.
    pub fn send(&self, command: Command) -> Result<JobId, WorkerError> {
        let id = self.ids.next();
        match self.commands.try_send((id, command)) {
            Ok(()) => Ok(id),
            Err(TrySendError::Full(_)) => Err(WorkerError::QueueFull { capacity: COMMAND_CAPACITY }),
            Err(TrySendError::Disconnected(_)) => Err(WorkerError::Stopped),
        }
    }

    /// The next event, if one is waiting (never blocks; for the UI thread).
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting up to `timeout` (blocks: for the CLI and tests, not the UI).
    /// `None` when the time ran out or the worker has stopped and every event was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Stops the worker: cancels the running job, drops queued ones and joins the worker thread
    /// (at most about half a second after the current command; a job that cannot stop in time,
    /// such as a model still loading, finishes on its own and its result is discarded).
    pub fn shutdown(mut self) {
        self.stop_worker();
    }

    fn stop_worker(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the worker if it waits for a command. When the queue is full the worker is busy
        // reading it and sees the stop flag before the next command.
        let _ = self.commands.try_send((JobId(0), Command::Shutdown));
        // The worker catches panics in every job and command; a panic here would be a bug in
        // the scheduler itself, and there is nothing left to stop.
        let _ = thread.join();
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::LayerConfig;

    fn quiet() -> WorkerHandle {
        Worker::spawn(Box::new(|| {})).expect("spawn")
    }

    #[test]
    fn send_never_blocks_and_results_are_never_dropped() {
        let h = quiet();
        // Nobody reads events: the worker waits for room to send its results, commands pile up,
        // and `send` says so instead of blocking.
        let mut sent = Vec::new();
        let mut refused = None;
        for _ in 0..4 * (COMMAND_CAPACITY + EVENT_CAPACITY) {
            match h.send(Command::SetDefaults { config: LayerConfig::default() }) {
                Ok(id) => sent.push(id),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert_eq!(refused, Some(WorkerError::QueueFull { capacity: COMMAND_CAPACITY }));
        assert!(sent.len() >= COMMAND_CAPACITY, "{}", sent.len());
        for id in &sent {
            let e = h.recv_timeout(Duration::from_secs(30)).expect("every command is answered");
            assert_eq!(e.job(), *id);
            assert!(matches!(&e, Event::Failed { error, .. } if error.contains("no model")), "{e:?}");
        }
        h.shutdown();
    }

    #[test]
    fn a_stopped_worker_refuses_commands() {
        let h = quiet();
        h.send(Command::Shutdown).expect("send");
        // Cancel and Shutdown have no events; the channel closes when the worker has stopped.
        assert_eq!(h.recv_timeout(Duration::from_secs(30)), None);
        assert_eq!(h.send(Command::Evaluate), Err(WorkerError::Stopped));
        assert_eq!(h.try_recv(), None);
        drop(h);
    }

    #[test]
    fn cancelling_an_unknown_job_is_ignored() {
        let h = quiet();
        h.send(Command::Cancel { job: JobId(999) }).expect("send");
        let id = h.send(Command::Calibrate).expect("send");
        let e = h.recv_timeout(Duration::from_secs(30)).expect("answer");
        assert_eq!(e, Event::Failed { job: id, error: "no model is loaded: load a model first".into() });
    }
}
