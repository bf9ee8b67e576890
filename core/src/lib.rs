//! QuantBench core: everything except pixels. Model loading and summary, data sets, calibration,
//! quantization, simulation, export and the background worker. No GUI code lives here.

pub mod algorithms;
pub mod analysis;
pub mod calibrate;
pub mod data;
pub mod emit;
pub mod error;
pub mod export;
pub mod fsutil;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod panics;
pub mod pipeline;
pub mod plan;
pub mod quant;
pub mod report;
pub mod simulate;
pub mod worker;

pub use error::{Error, Result};
