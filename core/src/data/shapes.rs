//! Resolving concrete input shapes: dynamic dims come from the data or from `--input-shape`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Dim, TensorInfo, shape_to_string};

/// A user-given shape for one model input, written `name=1x3x48x192`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Model input name.
    pub name: String,
    /// All dims, batch first.
    pub dims: Vec<usize>,
}

impl FromStr for InputShape {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("input shape '{s}' is not of the form name=1x3x48x192"));
        let (name, dims) = s.rsplit_once('=').ok_or_else(bad)?;
        let dims = dims.split('x').map(|d| d.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<Vec<_>>>()?;
        if name.is_empty() || dims.is_empty() || dims.contains(&0) {
            return Err(bad());
        }
        Ok(Self { name: name.to_string(), dims })
    }
}

/// The batch size a model input fixes (its first dim when that is a number).
pub fn fixed_batch(input: &TensorInfo) -> Option<usize> {
    match input.shape.first() {
        Some(Dim::Fixed(n)) => usize::try_from(*n).ok(),
        _ => None,
    }
}

/// The concrete shape of one batch of `batch` samples for every model input (graph order):
/// the batch axis first (the model's own when it fixes one), then the per-sample dims taken from
/// `overrides`, else from the data's `sample_shapes`, else from the model when they are fixed.
/// Overrides and data must agree with each other and with the model's fixed dims.
pub fn resolve_input_shapes(
    inputs: &[TensorInfo],
    sample_shapes: Option<&[Vec<usize>]>,
    overrides: &[InputShape],
    batch: usize,
) -> Result<Vec<Vec<usize>>> {
    if let Some(o) = overrides.iter().find(|o| !inputs.iter().any(|i| i.name == o.name)) {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(Error::Shape(format!(
            "--input-shape names '{}', not a model input ({})",
            o.name,
            names.join(", ")
        )));
    }
    inputs
        .iter()
        .enumerate()
        .map(|(ix, input)| {
            let model_dims = &input.shape;
            if model_dims.is_empty() {
                return Err(Error::Shape(format!("model input '{}' is a scalar; a batch axis is needed", input.name)));
            }
            let from_override = overrides.iter().find(|o| o.name == input.name).map(|o| o.dims[1..].to_vec());
            let from_data = sample_shapes.and_then(|s| s.get(ix)).cloned();
            let sample = match (from_override, from_data) {
                (Some(o), Some(d)) if o != d => {
                    return Err(Error::Shape(format!(
                        "--input-shape for '{}' gives sample dims {o:?} but the data has {d:?}",
                        input.name
                    )));
                }
                (Some(s), _) | (None, Some(s)) => s,
                (None, None) => model_dims[1..]
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => usize::try_from(*n).ok(),
                        Dim::Symbolic(_) => None,
                    })
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        Error::Shape(format!(
                            "model input '{}' has dynamic dims {}: give data or --input-shape {}=1x...",
                            input.name,
                            shape_to_string(model_dims),
                            input.name
                        ))
                    })?,
            };
            if sample.len() + 1 != model_dims.len() {
                return Err(Error::Shape(format!(
                    "model input '{}' {} has rank {}, the given shape has rank {}",
                    input.name,
                    shape_to_string(model_dims),
                    model_dims.len(),
                    sample.len() + 1
                )));
            }
            for (got, want) in sample.iter().zip(&model_dims[1..]) {
                if let Dim::Fixed(w) = want
                    && u64::try_from(*got).ok() != Some(*w)
                {
                    return Err(Error::Shape(format!(
                        "model input '{}' {} does not accept sample shape {sample:?}",
                        input.name,
                        shape_to_string(model_dims)
                    )));
                }
            }
            let mut shape = vec![fixed_batch(input).unwrap_or(batch)];
            shape.extend(sample);
            Ok(shape)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, dims: &[&str]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            elem_type: "float32".into(),
            shape: dims
                .iter()
                .map(|d| d.parse::<u64>().map_or_else(|_| Dim::Symbolic((*d).to_string()), Dim::Fixed))
                .collect(),
        }
    }

    fn check(dims: &[&str], data: Option<Vec<usize>>, over: Option<&str>, expect: Result<Vec<usize>, &str>) {
        let inputs = [input("x", dims)];
        let data = data.map(|d| vec![d]);
        let overrides: Vec<InputShape> = over.map(|o| o.parse().expect("valid override")).into_iter().collect();
        let got = resolve_input_shapes(&inputs, data.as_deref(), &overrides, 1).map(|mut v| v.remove(0));
        match expect {
            Ok(e) => assert_eq!(got.expect("resolves"), e),
            Err(msg) => {
                let err = got.expect_err("must fail").to_string();
                assert!(err.contains(msg), "expected '{msg}' in '{err}'");
            }
        }
    }

    #[test]
    fn resolves_from_data_overrides_and_model() {
        check(&["batch", "3", "h", "w"], Some(vec![3, 48, 192]), None, Ok(vec![1, 3, 48, 192]));
        check(&["batch", "3", "h", "w"], None, Some("x=1x3x48x192"), Ok(vec![1, 3, 48, 192]));
        check(&["batch", "64"], None, None, Ok(vec![1, 64]));
        check(&["4", "64"], None, None, Ok(vec![4, 64]));
        check(&["batch", "3", "h", "w"], None, None, Err("has dynamic dims [batch, 3, h, w]"));
        check(&["batch", "3", "h", "w"], Some(vec![3, 8, 8]), Some("x=1x3x9x9"), Err("but the data has [3, 8, 8]"));
        check(&["batch", "3", "h", "w"], None, Some("x=1x4x9x9"), Err("does not accept sample shape [4, 9, 9]"));
        check(&["batch", "3", "h", "w"], None, Some("x=1x3x9"), Err("has rank 4, the given shape has rank 3"));
    }

    #[test]
    fn parses_and_rejects_shape_strings() {
        assert_eq!(
            "input=1x3x48x192".parse::<InputShape>().expect("valid"),
            InputShape { name: "input".into(), dims: vec![1, 3, 48, 192] }
        );
        for bad in ["input", "=1x3", "x=1xx3", "x=1x0x3", "x=a"] {
            assert!(bad.parse::<InputShape>().is_err(), "{bad}");
        }
        let inputs = [input("x", &["batch", "3"])];
        let err = resolve_input_shapes(&inputs, None, &["y=1x3".parse().expect("valid")], 1).expect_err("unknown");
        assert!(err.to_string().contains("--input-shape names 'y', not a model input (x)"), "{err}");
    }
}
