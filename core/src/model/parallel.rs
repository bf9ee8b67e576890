//! Running a plan over many samples on all cores: samples go in blocks, each block split across
//! scoped threads (a tract plan is shared, each thread has its own state); results come back in
//! sample order, so everything computed from them is deterministic.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::ArrayD;

use super::runtime::Runner;
use crate::error::{Error, Result};

/// `Err(Cancelled)` once `cancel` is set.
pub fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) { Err(Error::Cancelled) } else { Ok(()) }
}

/// Worker threads to use (at most 4).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Runs `runner` on samples `0..n` (inputs built by `feed`); `on_sample(i, outputs)` receives
/// each sample's outputs, in sample order. Worker `k` runs samples `k, k + T, …` and
/// hands each result over a channel of capacity one, so at most two samples per worker are held
/// at once, however many samples there are: a model whose every activation is an output (as in
/// calibration) needs memory for a few samples' activations, not for a block of them.
pub fn run_samples(
    runner: &Runner,
    n: usize,
    feed: &(dyn Fn(usize) -> Result<Vec<ArrayD<f32>>> + Sync),
    on_sample: &mut dyn FnMut(usize, Vec<ArrayD<f32>>) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<()> {
    run_map(n, &|i| feed(i).and_then(|x| runner.run(x)), on_sample, cancel)
}

/// As [`run_samples`], for any per-sample work: `work(i)` runs on the workers, `on_sample(i, r)`
/// receives the results in sample order, with the same bounded hand-over.
pub fn run_map<T: Send>(
    n: usize,
    work: &(dyn Fn(usize) -> Result<T> + Sync),
    on_sample: &mut dyn FnMut(usize, T) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<()> {
    let threads = threads().min(n).max(1);
    if threads == 1 {
        for i in 0..n {
            check_cancel(cancel)?;
            let out = work(i)?;
            on_sample(i, out)?;
        }
        return Ok(());
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for k in 0..threads {
            let (tx, rx) = crossbeam_channel::bounded::<Result<T>>(1);
            receivers.push(rx);
            let stop = &stop;
            handles.push(scope.spawn(move || {
                let mut i = k;
                while i < n && !stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                    let r = work(i);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                    i += threads;
                }
            }));
        }
        let mut result = (|| -> Result<()> {
            for i in 0..n {
                check_cancel(cancel)?;
                // A worker stops early only when cancelled or when it panicked.
                let Ok(received) = receivers[i % threads].recv() else {
                    check_cancel(cancel)?;
                    return Err(Error::Runtime("a simulation thread panicked".into()));
                };
                let out = received?;
                on_sample(i, out)?;
            }
            Ok(())
        })();
        // Unblock and stop the workers (a failed or cancelled pass leaves them mid-way).
        stop.store(true, Ordering::Relaxed);
        drop(receivers);
        for h in handles {
            if h.join().is_err() && result.is_ok() {
                result = Err(Error::Runtime("a simulation thread panicked".into()));
            }
        }
        result
    })
}

/// Runs `work(k)` for `k` in `0..n`, one item per core (each thread takes the next index), and
/// hands each result to `on_done(k, result)` in index order; stops at the first error (of `work`
/// or `on_done`) and returns it. For items that are whole computations (an evaluation each), not
/// samples: a result is held until those before it are done.
pub fn map_ordered<T: Send>(
    n: usize,
    work: &(dyn Fn(usize) -> Result<T> + Sync),
    on_done: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let threads = threads().min(n).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Room for every result: a worker never waits on the receiver.
        let (tx, rx) = crossbeam_channel::bounded::<(usize, Result<T>)>(n.max(1));
        for _ in 0..threads {
            let (tx, next, stop) = (tx.clone(), &next, &stop);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= n || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = work(k);
                    let failed = outcome.is_err();
                    if tx.send((k, outcome)).is_err() || failed {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: std::collections::BTreeMap<usize, T> = std::collections::BTreeMap::new();
        let mut emitted = 0;
        let result = (|| -> Result<()> {
            for (k, outcome) in &rx {
                pending.insert(k, outcome?);
                while let Some(r) = pending.remove(&emitted) {
                    on_done(emitted, r)?;
                    emitted += 1;
                }
            }
            // A worker that panicked ends the scope with that panic; one that stopped leaves a gap.
            if emitted < n {
                return Err(Error::Runtime("a worker thread stopped early".into()));
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })
}
