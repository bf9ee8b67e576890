//! QuantBench core: everything except pixels. Model loading and summary, data sets, calibration,
//! quantization, simulation, export and the background worker. No GUI code lives here.

pub mod calibrate;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod model;
pub mod observe;
pub mod quant;

pub use error::{Error, Result};
