//! End-to-end tests: the real `quantbench` binary, the core API on the sample models, and the
//! ONNX Runtime oracle. One test binary with modules (ripgrep's layout).

mod algorithms;
mod calibration;
mod corpus;
mod data;
mod export;
mod float_parity;
mod fuzz_regressions;
mod hostile;
mod inspect;
mod mixed_precision;
mod model_errors;
mod names;
mod opset;
mod parity;
mod placement;
mod realworld;
mod reduce_order;
mod saturation;
mod sensitivity;
mod simulate;
mod weight_only;
mod worker;
