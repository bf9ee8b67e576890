//! Calibration statistics and observers: streaming, mergeable per-tensor statistics, and the
//! methods that turn them into clip ranges.

mod histogram;
mod observer;
mod stats;

pub use histogram::{HISTOGRAM_BINS, Histogram};
pub use observer::Observer;
pub use stats::TensorStats;
