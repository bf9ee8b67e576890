//! The worker thread's loop: applies quick commands at once, queues jobs and runs them one at a
//! time on a job thread, coalesces evaluations and supersedes stale ones.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, select};

use super::error::{JobError, panic_message};
use super::job::{self, CancelFlags, JobDone, JobOutput, JobSpec};
use super::job_id::JobIds;
use super::session::Session;
use super::work::{JobRequest, Queued, Quick, Work};
use super::{Command, DataRole, Event, EventSink, JobId, JobKind};
use crate::analysis::Target;
use crate::data::InputShape;

/// How long the worker waits, when stopping, for the running job to see its cancel flag. A job
/// that does not stop in time (a model still loading) is left to finish on its own.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The job on the job thread.
#[derive(Debug)]
struct RunningJob {
    id: JobId,
    kind: JobKind,
    flags: CancelFlags,
    /// Set by a `Cancel` command.
    cancelled: bool,
    /// Set when something newer made the result stale.
    superseded: bool,
    /// The recipe revision and generation the job started from.
    revision: u64,
    generation: u64,
    input_shapes: Vec<InputShape>,
    thread: JoinHandle<()>,
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The worker thread's state and channels.
pub(crate) struct Scheduler {
    session: Session,
    /// Commands waiting their turn, in order.
    queue: VecDeque<(JobId, Queued)>,
    running: Option<RunningJob>,
    commands: Receiver<(JobId, Command)>,
    done_tx: Sender<JobDone>,
    done_rx: Receiver<JobDone>,
    sink: EventSink,
    ids: JobIds,
    stop: Arc<AtomicBool>,
}

impl Scheduler {
    /// A scheduler reading `commands` and answering on `sink`.
    pub(crate) fn new(
        commands: Receiver<(JobId, Command)>,
        sink: EventSink,
        ids: JobIds,
        stop: Arc<AtomicBool>,
        options: super::WorkerOptions,
    ) -> Self {
        // One job runs at a time, so one slot is enough; two leave room for a job that outlives
        // a stop.
        let (done_tx, done_rx) = crossbeam_channel::bounded(2);
        Self {
            session: Session::with_cache_budget(options.cache_budget_mib),
            queue: VecDeque::new(),
            running: None,
            commands,
            done_tx,
            done_rx,
            sink,
            ids,
            stop,
        }
    }

    /// Serves commands until `Shutdown`, the stop flag, or the handle going away.
    pub(crate) fn run(mut self) {
        loop {
            let flow = select! {
                recv(self.commands) -> msg => match msg {
                    Ok((id, command)) => self.on_command(id, command),
                    Err(_) => Flow::Stop,
                },
                recv(self.done_rx) -> msg => {
                    if let Ok(done) = msg {
                        self.on_done(done);
                    }
                    Flow::Continue
                },
            };
            // Apply everything already sent before starting new work, so a burst of changes
            // ends in one evaluation of the newest revision.
            if flow == Flow::Stop || self.drain_commands() == Flow::Stop {
                break;
            }
            self.start_next();
        }
        self.stop_running_job();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn drain_commands(&mut self) -> Flow {
        loop {
            if self.stopping() {
                return Flow::Stop;
            }
            let Ok((id, command)) = self.commands.try_recv() else { return Flow::Continue };
            if self.on_command(id, command) == Flow::Stop {
                return Flow::Stop;
            }
        }
    }

    fn on_command(&mut self, id: JobId, command: Command) -> Flow {
        if self.stopping() {
            return Flow::Stop;
        }
        match Work::from(command) {
            Work::Shutdown => return Flow::Stop,
            Work::Cancel(job) => self.cancel(job),
            Work::Job(JobRequest::Evaluate { inject_panic: false }) => self.queue_evaluation(id),
            Work::Job(request) => self.queue.push_back((id, Queued::Job(request))),
            Work::Quick(quick) if self.must_wait() => self.queue.push_back((id, Queued::Quick(quick))),
            Work::Quick(quick) => self.apply(id, quick),
        }
        Flow::Continue
    }

    /// Whether a quick command must wait its turn: a model is loading, or a job other than an
    /// evaluation is queued ahead of it.
    fn must_wait(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.kind == JobKind::LoadModel)
            || self.queue.iter().any(|(_, c)| !c.is_evaluation())
    }

    /// Queues an explicit evaluation; a queued one it makes redundant is superseded.
    fn queue_evaluation(&mut self, id: JobId) {
        if let Some(ix) = self.queue.iter().position(|(_, c)| c.is_evaluation())
            && let Some((old, _)) = self.queue.remove(ix)
        {
            self.sink.send(Event::Superseded { job: old });
        }
        self.queue.push_back((id, Queued::Job(JobRequest::Evaluate { inject_panic: false })));
    }

    /// The queued evaluation, queuing one when there is none.
    fn ensure_evaluation(&mut self) -> JobId {
        if let Some((id, _)) = self.queue.iter().find(|(_, c)| c.is_evaluation()) {
            return *id;
        }
        let id = self.ids.next();
        self.queue.push_back((id, Queued::Job(JobRequest::Evaluate { inject_panic: false })));
        id
    }

    /// Marks a running evaluation stale and stops it; returns whether there was one.
    fn supersede_running_evaluation(&mut self) -> bool {
        match &mut self.running {
            Some(r) if r.kind == JobKind::Evaluate && !r.superseded && !r.cancelled => {
                r.superseded = true;
                r.flags.job.store(true, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn cancel(&mut self, job: JobId) {
        if let Some(r) = self.running.as_mut().filter(|r| r.id == job) {
            r.cancelled = true;
            r.flags.job.store(true, Ordering::Relaxed);
            r.flags.reference.store(true, Ordering::Relaxed);
        } else if let Some(ix) = self.queue.iter().position(|(id, _)| *id == job) {
            self.queue.remove(ix);
            self.sink.send(Event::Cancelled { job });
        }
    }

    /// Applies a quick command (data loads and config changes) on this thread; a panic in it is
    /// reported like a job's.
    fn apply(&mut self, id: JobId, quick: Quick) {
        let event = catch_unwind(AssertUnwindSafe(|| self.apply_inner(id, quick)))
            .unwrap_or_else(|payload| Err(JobError::Panic(panic_message(&*payload))))
            .unwrap_or_else(|e| Event::Failed { job: id, error: e.to_string() });
        self.sink.send(event);
    }

    fn apply_inner(&mut self, id: JobId, quick: Quick) -> Result<Event, JobError> {
        let revision = match quick {
            Quick::LoadData { role, source } => return self.load_data(id, role, source),
            Quick::SetRecipe(recipe, calibration) => self.session.set_recipe(*recipe, calibration)?,
            Quick::UpdateLayer { layer, config } => self.session.update_layer(layer, config)?,
            Quick::SetDefaults(config) => self.session.set_defaults(config)?,
            Quick::SetMemoryBudget(mib) => {
                self.session.set_cache_budget(mib);
                return Ok(Event::MemoryBudgetSet { job: id, mib });
            }
        };
        let superseded = self.supersede_running_evaluation();
        let evaluation = (superseded || self.session.can_auto_evaluate()).then(|| self.ensure_evaluation());
        Ok(Event::RecipeChanged { job: id, revision, evaluation })
    }

    fn load_data(&mut self, job: JobId, role: DataRole, source: crate::data::DataSource) -> Result<Event, JobError> {
        let (num_samples, has_labels) = self.session.load_data(role, source)?;
        // An evaluation running on the old set is stale: run it again on the new one.
        if role == DataRole::Evaluation && self.supersede_running_evaluation() {
            self.ensure_evaluation();
        }
        Ok(Event::DataLoaded { job, role, num_samples, has_labels })
    }

    /// Applies quick commands that only have evaluations ahead of them, then, when the job
    /// thread is free, starts the next job.
    fn start_next(&mut self) {
        loop {
            if self.stopping() {
                return;
            }
            let model_loading = self.running.as_ref().is_some_and(|r| r.kind == JobKind::LoadModel);
            let quick = if model_loading {
                None
            } else {
                self.queue
                    .iter()
                    .take_while(|(_, q)| q.is_evaluation() || matches!(q, Queued::Quick(_)))
                    .position(|(_, q)| matches!(q, Queued::Quick(_)))
            };
            if let Some(ix) = quick {
                match self.queue.remove(ix) {
                    Some((id, Queued::Quick(quick))) => {
                        self.apply(id, quick);
                        continue;
                    }
                    // Not reached: `ix` was found as quick work. Put it back where it was.
                    Some(job) => self.queue.insert(ix, job),
                    None => {}
                }
            }
            if self.running.is_some() {
                return;
            }
            let Some((id, queued)) = self.queue.pop_front() else { return };
            let result = match queued {
                Queued::Job(request) => self.start(id, request),
                Queued::Quick(quick) => {
                    self.apply(id, quick);
                    Ok(())
                }
            };
            if let Err(e) = result {
                self.sink.send(Event::Failed { job: id, error: e.to_string() });
            }
        }
    }

    /// Starts a job on a new job thread.
    fn start(&mut self, id: JobId, request: JobRequest) -> Result<(), JobError> {
        let (kind, spec) = match request {
            JobRequest::LoadModel(path) => (JobKind::LoadModel, JobSpec::LoadModel { path }),
            JobRequest::Calibrate => {
                let (model, data, recipe) = self.session.calibration_inputs()?;
                (JobKind::Calibrate, JobSpec::Calibrate { model, data, recipe: Box::new(recipe) })
            }
            JobRequest::Evaluate { inject_panic } => {
                let inputs = Box::new(self.session.evaluation_inputs()?);
                (JobKind::Evaluate, JobSpec::Evaluate { inputs, inject_panic })
            }
            JobRequest::Export { kind, path } => {
                let (model, recipe, measured) = self.session.export_inputs()?;
                (JobKind::Export, JobSpec::Export { model, recipe: Box::new(recipe), measured, kind, path })
            }
            JobRequest::Sensitivity { metric, bits } => {
                let bits = sweep_bits(bits)?;
                let inputs = Box::new(self.session.evaluation_inputs()?);
                (JobKind::Sensitivity, JobSpec::Sensitivity { inputs, metric, bits })
            }
            JobRequest::MixedPrecision { target } => {
                check_target(target)?;
                let inputs = Box::new(self.session.evaluation_inputs()?);
                (JobKind::MixedPrecision, JobSpec::MixedPrecision { inputs, target })
            }
        };
        let flags = CancelFlags::default();
        let input_shapes = self.session.recipe().calibration_config.input_shapes.clone();
        let (job_flags, sink, done) = (flags.clone(), self.sink.clone(), self.done_tx.clone());
        self.sink.send(Event::Started { job: id, kind });
        let thread = std::thread::Builder::new()
            .name(format!("quantbench-job-{}", id.0))
            .spawn(move || job::run(id, spec, &job_flags, &sink, &done))
            .map_err(|e| JobError::Spawn(e.to_string()))?;
        self.running = Some(RunningJob {
            id,
            kind,
            flags,
            cancelled: false,
            superseded: false,
            revision: self.session.revision(),
            generation: self.session.generation(),
            input_shapes,
            thread,
        });
        Ok(())
    }

    /// Takes in a finished job's result and sends its terminal event.
    fn on_done(&mut self, done: JobDone) {
        let Some(job) = self.running.take_if(|r| r.id == done.id) else { return };
        // The thread has sent its last message and is ending.
        let _ = job.thread.join();
        if let Some(simulator) = done.built_simulator {
            self.session.store_simulator(simulator, job.generation, job.input_shapes);
        }
        let id = job.id;
        let event = match done.result {
            Err(e @ JobError::Panic(_)) => Event::Failed { job: id, error: e.to_string() },
            Ok(JobOutput::Evaluation { evaluation, state, simulator, estimate }) => {
                // Any finished state is a valid start for the next, incremental, evaluation.
                self.session.store_state(&simulator, *state, estimate.map(|(s, st)| (s, *st)));
                let current = job.revision == self.session.revision() && job.generation == self.session.generation();
                if job.cancelled {
                    Event::Cancelled { job: id }
                } else if current && !job.superseded {
                    Event::Evaluated { job: id, revision: job.revision, evaluation }
                } else {
                    Event::Superseded { job: id }
                }
            }
            _ if job.superseded => Event::Superseded { job: id },
            // A result that arrives after a Cancel is dropped (a model load cannot stop half-way).
            Err(JobError::Cancelled) | Ok(_) if job.cancelled => Event::Cancelled { job: id },
            Err(e) => Event::Failed { job: id, error: e.to_string() },
            Ok(JobOutput::Model(model, weights)) => {
                let summary = Box::new(model.summary.clone());
                self.session.replace_model(*model);
                Event::ModelLoaded { job: id, summary, weights }
            }
            Ok(JobOutput::Exported { kind, path }) => Event::Exported { job: id, kind, path },
            // Results on a model or evaluation set no longer loaded are stale; a config change
            // while an analysis runs is not: the results say which revision they describe.
            Ok(JobOutput::Sensitivity { .. } | JobOutput::MixedPrecision { .. })
                if job.generation != self.session.generation() =>
            {
                Event::Superseded { job: id }
            }
            Ok(JobOutput::Sensitivity { metric, bits, layers }) => {
                Event::SensitivityAnalyzed { job: id, revision: job.revision, metric, bits, layers }
            }
            Ok(JobOutput::MixedPrecision { target, result }) => {
                Event::MixedPrecisionFound { job: id, revision: job.revision, target, result }
            }
            Ok(JobOutput::Calibration { measured, model }) => {
                let revision = self.session.set_calibration(measured.clone(), model);
                Event::Calibrated { job: id, revision, recipe: Box::new(self.session.recipe().clone()), measured }
            }
        };
        self.sink.send(event);
    }

    /// Cancels the running job and gives it a moment to end.
    fn stop_running_job(&mut self) {
        let Some(job) = self.running.take() else { return };
        job.flags.job.store(true, Ordering::Relaxed);
        job.flags.reference.store(true, Ordering::Relaxed);
        if self.done_rx.recv_timeout(STOP_GRACE).is_ok() {
            let _ = job.thread.join();
        }
    }
}

/// The sweep's bit widths, sorted and without duplicates; each must be 2–16.
fn sweep_bits(mut bits: Vec<u8>) -> Result<Vec<u8>, JobError> {
    if let Some(b) = bits.iter().find(|b| !(2..=16).contains(*b)) {
        return Err(crate::Error::Config(format!("sweep bits must be 2–16, got {b}")).into());
    }
    bits.sort_unstable();
    bits.dedup();
    Ok(bits)
}

/// A target the search can aim for: a finite, non-negative drop or a positive size.
fn check_target(target: Target) -> Result<(), JobError> {
    match target {
        Target::AccuracyDrop(points) if !(points.is_finite() && points >= 0.0) => {
            Err(crate::Error::Config(format!("the accuracy drop must be 0 points or more, got {points}")).into())
        }
        Target::SizeBytes(0) => Err(crate::Error::Config("the size target must be above 0 bytes".into()).into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_bits_are_checked_sorted_and_unique() {
        assert_eq!(sweep_bits(vec![8, 2, 4, 2]).expect("valid"), vec![2, 4, 8]);
        assert_eq!(sweep_bits(Vec::new()).expect("valid"), Vec::<u8>::new());
        let e = sweep_bits(vec![4, 1]).expect_err("1 bit");
        assert_eq!(e.to_string(), "invalid configuration: sweep bits must be 2–16, got 1");
        assert!(sweep_bits(vec![17]).is_err());
    }

    #[test]
    fn targets_are_checked() {
        assert!(check_target(Target::AccuracyDrop(0.0)).is_ok());
        assert!(check_target(Target::SizeBytes(1)).is_ok());
        assert!(check_target(Target::AccuracyDrop(-1.0)).is_err());
        assert!(check_target(Target::AccuracyDrop(f64::NAN)).is_err());
        assert!(check_target(Target::SizeBytes(0)).is_err());
    }
}
