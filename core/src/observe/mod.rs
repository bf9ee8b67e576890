//! Calibration statistics and observers: streaming, mergeable per-tensor statistics, and the
//! methods that turn them into clip ranges.

mod calibration;
mod histogram;
mod observer;
mod stats;

pub use calibration::{Calibration, RangeCache, WeightStats};
pub use histogram::{HISTOGRAM_BINS, Histogram};
pub use observer::Observer;
pub use stats::TensorStats;
