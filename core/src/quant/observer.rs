//! The observer a tensor's clip range is chosen with (configuration; the range computation from
//! calibration statistics lives in `observe`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A range-selection method with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observer {
    /// The observed minimum and maximum.
    #[default]
    MinMax,
    /// Exponential moving average of per-batch minima and maxima.
    Ema {
        /// Weight of each new batch, in (0, 1].
        constant: f32,
    },
    /// Clip at a percentile of |x| (ONNX Runtime's symmetric percentile calibrator).
    Percentile {
        /// Percentile in (0, 100], e.g. 99.999.
        percentile: f32,
    },
    /// TensorRT's KL-divergence threshold search, as ONNX Runtime implements it.
    Entropy {
        /// Bins of the histogram the search runs on.
        num_bins: usize,
        /// Quantized bins the candidate distributions are merged into.
        num_quantized_bins: usize,
    },
    /// The clip range minimising the expected quantization MSE over the histogram.
    Mse,
    /// A range the user chose (e.g. by dragging a clip line): exactly `[min, max]`, whatever the
    /// statistics say. Scale and zero point then follow as for any range (0 is always included).
    Manual {
        /// Lower end of the clip range.
        min: f32,
        /// Upper end of the clip range.
        max: f32,
    },
}

impl Observer {
    /// All statistical observers with default parameters, in the order the UI lists them
    /// ([`Observer::Manual`] needs a range, so it is not among them).
    pub const ALL: [Self; 5] = [
        Self::MinMax,
        Self::Ema { constant: 0.01 },
        Self::Percentile { percentile: 99.999 },
        Self::Entropy { num_bins: 2048, num_quantized_bins: 128 },
        Self::Mse,
    ];

    /// Short name as the CLI writes it (`percentile:99.99`).
    pub fn name(&self) -> String {
        match self {
            Self::MinMax => "minmax".into(),
            Self::Ema { constant } => format!("ema:{constant}"),
            Self::Percentile { percentile } => format!("percentile:{percentile}"),
            Self::Entropy { .. } => "entropy".into(),
            Self::Mse => "mse".into(),
            Self::Manual { min, max } => format!("manual:{min},{max}"),
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Ema { constant } if !(constant > 0.0 && constant <= 1.0) => {
                Err(Error::Config(format!("EMA constant must be in (0, 1], got {constant}")))
            }
            Self::Percentile { percentile } if !(percentile > 0.0 && percentile <= 100.0) => {
                Err(Error::Config(format!("percentile must be in (0, 100], got {percentile}")))
            }
            Self::Entropy { num_bins, num_quantized_bins }
                if num_quantized_bins < 2 || num_bins < num_quantized_bins =>
            {
                Err(Error::Config(format!(
                    "entropy needs num_bins ≥ num_quantized_bins ≥ 2, got {num_bins} and {num_quantized_bins}"
                )))
            }
            Self::Manual { min, max } if !(min.is_finite() && max.is_finite() && min < max) => {
                Err(Error::Config(format!("a manual range needs finite min < max, got [{min}, {max}]")))
            }
            _ => Ok(()),
        }
    }
}

impl FromStr for Observer {
    type Err = Error;

    /// Parses `minmax`, `ema[:C]`, `percentile[:P]`, `entropy`, `mse`, `manual:MIN,MAX`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
        let num = |default: f32| -> Result<f32> {
            arg.map_or(Ok(default), |a| {
                a.parse::<f32>().map_err(|_| Error::Config(format!("bad observer parameter in '{s}'")))
            })
        };
        let obs = match name.to_ascii_lowercase().as_str() {
            "minmax" => Self::MinMax,
            "ema" => Self::Ema { constant: num(0.01)? },
            "percentile" => Self::Percentile { percentile: num(99.999)? },
            "entropy" => Self::Entropy { num_bins: 2048, num_quantized_bins: 128 },
            "mse" => Self::Mse,
            "manual" => {
                let bad = || Error::Config(format!("a manual range is written manual:MIN,MAX, got '{s}'"));
                let (lo, hi) = arg.and_then(|a| a.split_once(',')).ok_or_else(bad)?;
                let parse = |v: &str| v.trim().parse::<f32>().map_err(|_| bad());
                Self::Manual { min: parse(lo)?, max: parse(hi)? }
            }
            _ => {
                return Err(Error::Config(format!(
                    "unknown observer '{s}' (expected minmax, ema[:C], percentile[:P], entropy, mse, manual:MIN,MAX)"
                )));
            }
        };
        obs.validate()?;
        Ok(obs)
    }
}
