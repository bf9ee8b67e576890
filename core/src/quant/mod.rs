//! Quantization math: schemes, (scale, zero point) as ONNX Runtime computes them, fake-quant
//! kernels, and the recipe that records a user's configuration.

mod algorithm_settings;
mod calibration_config;
mod fake;
mod observer;
mod qparams;
pub mod recipe;
pub mod runtime;
mod scheme;
mod target;
mod weight_algorithm;

pub use algorithm_settings::{AdaRoundSettings, AlgorithmSettings, EasyQuantSettings};
pub use calibration_config::CalibrationConfig;
pub use fake::{WeightQuant, fake_quant_per_axis, fake_quant_slice, quantize_weight};
pub use observer::Observer;
pub use qparams::{QParams, QRange, compute_scale_zp, round_half_even, scale_zp};
pub use runtime::{CpuInt8, RUNTIME_PROFILES, RuntimeProfile};
pub use scheme::{ActivationScheme, Granularity, LayerAlgorithms, LayerConfig, WeightScheme};
pub use target::{TARGETS, Target, WEIGHT_FORMATS, WeightFormat};
pub use weight_algorithm::{AwqSettings, GptqSettings, HqqSettings, WEIGHT_ALGORITHMS, WeightAlgorithm};
