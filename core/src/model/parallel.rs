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

/// Samples per block: cancellation and progress land between blocks.
const BLOCK: usize = 32;

/// Worker threads to use (at most 4).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Runs `runner` on samples `0..n` (inputs built by `feed`); `on_block(first, outputs)` receives
/// each block's outputs in order.
pub fn run_samples(
    runner: &Runner,
    n: usize,
    feed: &(dyn Fn(usize) -> Result<Vec<ArrayD<f32>>> + Sync),
    on_block: &mut dyn FnMut(usize, Vec<Vec<ArrayD<f32>>>) -> Result<()>,
    cancel: &AtomicBool,
) -> Result<()> {
    let threads = threads();
    let mut first = 0;
    while first < n {
        check_cancel(cancel)?;
        let end = (first + BLOCK).min(n);
        let chunk = (end - first).div_ceil(threads).max(1);
        let results: Vec<Result<Vec<Vec<ArrayD<f32>>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (first..end)
                .step_by(chunk)
                .map(|start| {
                    let stop = (start + chunk).min(end);
                    scope.spawn(move || (start..stop).map(|i| runner.run(feed(i)?)).collect::<Result<Vec<_>>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Runtime("a simulation thread panicked".into()))))
                .collect()
        });
        let mut outputs = Vec::with_capacity(end - first);
        for r in results {
            outputs.extend(r?);
        }
        on_block(first, outputs)?;
        first = end;
    }
    Ok(())
}
