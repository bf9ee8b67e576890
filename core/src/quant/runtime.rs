//! Runtime profiles: the integer arithmetic of the runtime and CPU that will execute an export.
//!
//! ONNX Runtime's x86 kernels for uint8 activations × int8 weights differ by CPU. Where the CPU
//! has VNNI (`vpdpbusd`, AVX-512 VNNI or AVX-VNNI) the products accumulate exactly in int32; where
//! it has only AVX2 (or AVX-512 without VNNI) the kernel uses `vpmaddubsw`, which adds each pair
//! of neighbouring products along the reduction axis into an int16 **with saturation** before
//! widening. Full-range 8-bit weights then overflow (`2 · 255 · 127 > 32767`) and the device's
//! results drift from an exact simulation. A profile tells the simulation which arithmetic to
//! reproduce, and the default recipe what to avoid (7-bit weights, as ORT's `reduce_range`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The arithmetic of the runtime that executes the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RuntimeProfile {
    /// Exact integer arithmetic (the ONNX specification; ORT with graph optimisations off).
    #[default]
    #[serde(rename = "reference")]
    Reference,
    /// ONNX Runtime on x86 without VNNI: u8×s8 product pairs summed in int16 with saturation.
    #[serde(rename = "ort-x86-avx2")]
    OrtX86Avx2,
    /// ONNX Runtime on x86 with AVX-512 VNNI or AVX-VNNI: exact int32 accumulation.
    #[serde(rename = "ort-x86-vnni")]
    OrtX86Vnni,
    /// ONNX Runtime on ARM (NEON/SDOT): exact int32 accumulation.
    #[serde(rename = "ort-arm")]
    OrtArm,
}

/// Every profile, in the order the GUI lists them.
pub const RUNTIME_PROFILES: [RuntimeProfile; 4] =
    [RuntimeProfile::Reference, RuntimeProfile::OrtX86Avx2, RuntimeProfile::OrtX86Vnni, RuntimeProfile::OrtArm];

/// What the local CPU offers for int8 dot products (read once from cpuid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuInt8 {
    /// x86-64 CPU.
    pub x86: bool,
    /// AVX2.
    pub avx2: bool,
    /// AVX-512 VNNI.
    pub avx512_vnni: bool,
    /// AVX-VNNI (the VEX-encoded form).
    pub avx_vnni: bool,
    /// aarch64 CPU.
    pub arm: bool,
}

impl CpuInt8 {
    /// The local CPU's features.
    pub fn local() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Self {
                x86: true,
                avx2: std::arch::is_x86_feature_detected!("avx2"),
                avx512_vnni: std::arch::is_x86_feature_detected!("avx512vnni"),
                avx_vnni: std::arch::is_x86_feature_detected!("avxvnni"),
                arm: false,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self { x86: false, avx2: false, avx512_vnni: false, avx_vnni: false, arm: cfg!(target_arch = "aarch64") }
        }
    }

    /// The features as a short text (for reports and benchmark tables).
    pub fn describe(&self) -> String {
        if self.arm {
            return "aarch64".into();
        }
        if !self.x86 {
            return "unknown CPU".into();
        }
        let mut f = Vec::new();
        if self.avx2 {
            f.push("avx2");
        }
        if self.avx512_vnni {
            f.push("avx512_vnni");
        }
        if self.avx_vnni {
            f.push("avx_vnni");
        }
        if !self.avx512_vnni && !self.avx_vnni {
            f.push("no VNNI");
        }
        format!("x86-64 ({})", f.join(", "))
    }

    /// The ONNX Runtime profile matching these features.
    pub fn profile(&self) -> RuntimeProfile {
        if self.arm {
            RuntimeProfile::OrtArm
        } else if self.x86 && (self.avx512_vnni || self.avx_vnni) {
            RuntimeProfile::OrtX86Vnni
        } else if self.x86 {
            RuntimeProfile::OrtX86Avx2
        } else {
            RuntimeProfile::Reference
        }
    }
}

impl RuntimeProfile {
    /// The profile of ONNX Runtime on the local CPU (cpuid).
    pub fn detect() -> Self {
        CpuInt8::local().profile()
    }

    /// The name used in recipes and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::OrtX86Avx2 => "ort-x86-avx2",
            Self::OrtX86Vnni => "ort-x86-vnni",
            Self::OrtArm => "ort-arm",
        }
    }

    /// One line for people.
    pub fn description(self) -> &'static str {
        match self {
            Self::Reference => "exact integer arithmetic (ONNX specification)",
            Self::OrtX86Avx2 => "ONNX Runtime, x86 without VNNI: u8×s8 pairs summed in int16 with saturation",
            Self::OrtX86Vnni => "ONNX Runtime, x86 with VNNI: exact int32 accumulation",
            Self::OrtArm => "ONNX Runtime, ARM: exact int32 accumulation",
        }
    }

    /// Whether the runtime sums u8×s8 product pairs in a saturating int16.
    pub fn saturates_u8s8_pairs(self) -> bool {
        self == Self::OrtX86Avx2
    }

    /// The weight bit width the default recipe uses: 7 where 8-bit weights could saturate (ORT's
    /// `reduce_range`: `2 · 255 · 63 < 32767`), else 8.
    pub fn default_weight_bits(self) -> u8 {
        if self.saturates_u8s8_pairs() { 7 } else { 8 }
    }
}

impl fmt::Display for RuntimeProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RuntimeProfile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") || s.eq_ignore_ascii_case("local") {
            return Ok(Self::detect());
        }
        RUNTIME_PROFILES.into_iter().find(|p| p.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<&str> = RUNTIME_PROFILES.iter().map(|p| p.name()).collect();
            Error::Config(format!("unknown runtime profile '{s}': expected auto or one of {}", names.join(", ")))
        })
    }
}

/// The int16 saturation limits of `vpmaddubsw`.
pub const I16_MIN: i32 = i16::MIN as i32;
/// See [`I16_MIN`].
pub const I16_MAX: i32 = i16::MAX as i32;

/// The extreme pair sums `a0·w0 + a1·w1` over activations `a` in `[amin, amax]` for one weight
/// pair, as `(lowest, highest)`.
pub fn pair_sum_bounds(w0: i32, w1: i32, amin: i32, amax: i32) -> (i32, i32) {
    let ext = |w: i32| if w >= 0 { (w * amin, w * amax) } else { (w * amax, w * amin) };
    let (l0, h0) = ext(w0);
    let (l1, h1) = ext(w1);
    (l0 + l1, h0 + h1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in RUNTIME_PROFILES {
            assert_eq!(p.name().parse::<RuntimeProfile>().expect("parse"), p);
            let json = serde_json::to_string(&p).expect("json");
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<RuntimeProfile>(&json).expect("back"), p);
        }
        assert_eq!("auto".parse::<RuntimeProfile>().expect("auto"), RuntimeProfile::detect());
        let err = "tpu".parse::<RuntimeProfile>().expect_err("unknown");
        assert!(err.to_string().contains("unknown runtime profile 'tpu'"), "{err}");
    }

    #[test]
    fn detection_maps_features_to_profiles() {
        let avx2 = CpuInt8 { x86: true, avx2: true, avx512_vnni: false, avx_vnni: false, arm: false };
        assert_eq!(avx2.profile(), RuntimeProfile::OrtX86Avx2);
        assert_eq!(CpuInt8 { avx512_vnni: true, ..avx2 }.profile(), RuntimeProfile::OrtX86Vnni);
        assert_eq!(CpuInt8 { avx_vnni: true, ..avx2 }.profile(), RuntimeProfile::OrtX86Vnni);
        let arm = CpuInt8 { x86: false, avx2: false, avx512_vnni: false, avx_vnni: false, arm: true };
        assert_eq!(arm.profile(), RuntimeProfile::OrtArm);
        assert!(avx2.describe().contains("no VNNI"));
        // The local CPU agrees with /proc/cpuinfo where there is one.
        if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo")
            && cfg!(target_arch = "x86_64")
        {
            let vnni = info.split_whitespace().any(|w| w == "avx512_vnni" || w == "avx_vnni");
            assert_eq!(RuntimeProfile::detect() == RuntimeProfile::OrtX86Vnni, vnni);
        }
    }

    #[test]
    fn seven_bit_weights_cannot_saturate_and_eight_bit_can() {
        assert_eq!(pair_sum_bounds(63, 63, 0, 255), (0, 32130));
        assert_eq!(pair_sum_bounds(-63, -63, 0, 255), (-32130, 0));
        assert!(pair_sum_bounds(127, 127, 0, 255).1 > I16_MAX);
        assert!(pair_sum_bounds(-127, -128, 0, 255).0 < I16_MIN);
        assert_eq!(pair_sum_bounds(10, -3, 0, 255), (-765, 2550));
        assert_eq!(RuntimeProfile::OrtX86Avx2.default_weight_bits(), 7);
        assert_eq!(RuntimeProfile::OrtX86Vnni.default_weight_bits(), 8);
    }
}
