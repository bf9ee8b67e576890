//! QuantBench core: everything except pixels. Model loading and summary, data sets, calibration,
//! quantization, simulation, export and the background worker. No GUI code lives here.

pub mod data;
pub mod error;
pub mod model;

pub use error::{Error, Result};
