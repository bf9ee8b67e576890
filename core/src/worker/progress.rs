//! Progress reporting for one job, throttled to about ten events per second plus the last one.

use std::time::{Duration, Instant};

use super::{Event, EventSink, JobId};

/// The shortest time between two progress events of one job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Turns a job's progress callbacks into throttled `Progress` events.
#[derive(Debug)]
pub(crate) struct ProgressReporter {
    job: JobId,
    sink: EventSink,
    last_sent: Option<Instant>,
    /// The newest report not sent yet (sent by [`ProgressReporter::finish`]).
    unsent: Option<(String, usize, usize)>,
}

impl ProgressReporter {
    /// A reporter for `job`.
    pub(crate) fn new(job: JobId, sink: EventSink) -> Self {
        Self { job, sink, last_sent: None, unsent: None }
    }

    /// Reports that `done` of `total` samples of `stage` are done; sent when the last event of
    /// this job is at least [`PROGRESS_INTERVAL`] old.
    pub(crate) fn report(&mut self, stage: &str, done: usize, total: usize) {
        let now = Instant::now();
        if self.last_sent.is_none_or(|t| now.duration_since(t) >= PROGRESS_INTERVAL)
            && self.sink.try_send(Event::Progress { job: self.job, stage: stage.to_string(), done, total })
        {
            self.last_sent = Some(now);
            self.unsent = None;
        } else {
            match &mut self.unsent {
                Some((s, d, t)) if s == stage => (*d, *t) = (done, total),
                unsent => *unsent = Some((stage.to_string(), done, total)),
            }
        }
    }

    /// Sends the last report if the throttle held it back, so progress ends where the job did.
    pub(crate) fn finish(&mut self) {
        if let Some((stage, done, total)) = self.unsent.take() {
            self.sink.try_send(Event::Progress { job: self.job, stage, done, total });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    fn progress(e: &Event) -> (String, usize, usize) {
        match e {
            Event::Progress { stage, done, total, .. } => (stage.clone(), *done, *total),
            other => panic!("not progress: {other:?}"),
        }
    }

    #[test]
    fn throttles_and_ends_with_the_last_report() {
        let (tx, rx) = crossbeam_channel::bounded(64);
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        let sink = EventSink::new(
            tx,
            Arc::new(move || {
                w.fetch_add(1, Ordering::Relaxed);
            }),
            Arc::new(AtomicBool::new(false)),
        );
        let mut p = ProgressReporter::new(JobId(3), sink);
        for i in 1..=1000 {
            p.report("calibration", i, 1000);
        }
        p.report("layer fc", 1, 2);
        p.report("layer fc", 2, 2);
        p.finish();
        let events: Vec<_> = rx.try_iter().collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(progress(&events[0]), ("calibration".into(), 1, 1000));
        assert_eq!(progress(&events[1]), ("layer fc".into(), 2, 2));
        assert_eq!(woken.load(Ordering::Relaxed), 2);
        assert!(events.iter().all(|e| e.job() == JobId(3)));
    }

    #[test]
    fn a_full_channel_drops_progress_without_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sink = EventSink::new(tx, Arc::new(|| {}), Arc::new(AtomicBool::new(false)));
        let mut p = ProgressReporter::new(JobId(1), sink);
        p.report("calibration", 1, 3);
        std::thread::sleep(PROGRESS_INTERVAL);
        p.report("calibration", 2, 3);
        p.report("calibration", 3, 3);
        p.finish();
        assert_eq!(rx.try_iter().map(|e| progress(&e).1).collect::<Vec<_>>(), vec![1]);
    }
}
