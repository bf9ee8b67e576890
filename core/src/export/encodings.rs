//! Encodings JSON: AIMET's format (`activation_encodings` / `param_encodings`) and ONNX Runtime's
//! `TensorQuantOverrides` style, both from the plan.

use serde_json::{Map, Value, json};

use crate::plan::QuantPlan;
use crate::quant::QParams;

/// One AIMET encoding entry: `offset = qmin - zero_point`, `min = offset · scale`,
/// `max = (qmax - zero_point) · scale`.
fn aimet_entry(p: &QParams, bits: u8, symmetric: bool) -> Value {
    let (min, max) = p.real_range();
    json!({
        "bitwidth": bits,
        "dtype": "int",
        "is_symmetric": if symmetric { "True" } else { "False" },
        "min": min,
        "max": max,
        "offset": p.range.qmin - p.zero_point,
        "scale": p.scale,
    })
}

/// The AIMET encodings of `plan` (maps sorted by tensor name).
pub fn aimet_encodings(plan: &QuantPlan) -> Value {
    let mut activations = Map::new();
    for a in plan.activations.values().filter(|a| !a.dynamic) {
        activations.insert(a.tensor.clone(), json!([aimet_entry(&a.params, a.scheme.bits, a.scheme.symmetric)]));
    }
    let mut params = Map::new();
    for lp in &plan.layers {
        if let Some(wq) = &lp.weight_quant {
            let bits = if lp.config.weight.ternary { 2 } else { lp.config.weight.bits };
            let entries: Vec<Value> =
                wq.params.iter().map(|p| aimet_entry(p, bits, lp.config.weight.symmetric)).collect();
            params.insert(lp.weight.clone(), Value::Array(entries));
        }
        if let Some(b) = &lp.bias {
            let entries: Vec<Value> = b
                .scales
                .iter()
                .map(|&s| json!({"bitwidth": 32, "dtype": "int", "is_symmetric": "True", "offset": 0, "scale": s}))
                .collect();
            params.insert(b.tensor.clone(), Value::Array(entries));
        }
    }
    json!({
        "version": "0.6.1",
        "activation_encodings": activations,
        "param_encodings": params,
        "excluded_layers": [],
        "quantizer_args": {},
    })
}

fn ort_type(p: &QParams) -> &'static str {
    match (p.range.qmin < 0, p.range.qmax > 255 || p.range.qmin < -128) {
        (false, false) => "QUInt8",
        (true, false) => "QInt8",
        (false, true) => "QUInt16",
        (true, true) => "QInt16",
    }
}

/// ONNX Runtime `TensorQuantOverrides`-style JSON: per tensor, its type, scale and zero point
/// (weights: type, symmetry and axis, with the per-channel scales for reference).
pub fn ort_overrides(plan: &QuantPlan) -> Value {
    let mut map = Map::new();
    for a in plan.activations.values().filter(|a| !a.dynamic) {
        let p = a.params;
        map.insert(
            a.tensor.clone(),
            json!([{
                "quant_type": ort_type(&p),
                "scale": p.scale,
                "zero_point": p.zero_point,
                "symmetric": a.scheme.symmetric,
                "rmin": a.range.0,
                "rmax": a.range.1,
            }]),
        );
    }
    for lp in &plan.layers {
        if let Some(wq) = &lp.weight_quant {
            let mut entry = Map::new();
            entry.insert("quant_type".into(), json!(ort_type(&wq.params[0])));
            entry.insert("symmetric".into(), json!(lp.config.weight.symmetric));
            if let Some(axis) = wq.axis {
                entry.insert("axis".into(), json!(axis));
                entry.insert("scales".into(), json!(wq.params.iter().map(|p| p.scale).collect::<Vec<_>>()));
                entry.insert("zero_points".into(), json!(wq.params.iter().map(|p| p.zero_point).collect::<Vec<_>>()));
            } else {
                entry.insert("scale".into(), json!(wq.params[0].scale));
                entry.insert("zero_point".into(), json!(wq.params[0].zero_point));
            }
            map.insert(lp.weight.clone(), Value::Array(vec![Value::Object(entry)]));
        }
    }
    json!({ "TensorQuantOverrides": map })
}
