//! The float reference's own values: what it keeps within the memory budget (the rest is
//! recomputed per sample by its float runner), a stratified subset of its samples, the reference
//! restricted to one, and the state of the float plan made from it without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ndarray::ArrayD;

use super::{ESTIMATE_SAMPLES, SimState, Simulator, cache, graph};
use crate::error::{Error, Result};
use crate::model::runtime::Values;
use crate::plan::QuantPlan;

impl Simulator {
    /// The model inputs of sample `i` (a copy, to feed a runner).
    pub(crate) fn inputs(&self, i: usize) -> Vec<ArrayD<f32>> {
        self.samples[i].iter().map(|a| (**a).clone()).collect()
    }

    /// A fixed subset of `m` evaluation samples (all of them when `m` ≥ their number), stratified
    /// by class: each label (or, without labels, each float prediction) gets its share of `m`
    /// (largest remainders, every class at least one sample while room remains), picked evenly
    /// spaced within the class; indices ascending.
    pub fn subset(&self, m: usize) -> Vec<usize> {
        let n = self.samples.len();
        if m >= n {
            return (0..n).collect();
        }
        let class_of = |i: usize| -> i64 {
            self.labels.as_ref().and_then(|l| l.get(i).copied()).unwrap_or(self.float_predictions[i] as i64)
        };
        let mut classes: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            classes.entry(class_of(i)).or_default().push(i);
        }
        let members: Vec<&Vec<usize>> = classes.values().collect();
        // Shares: one per class while room remains, then the rest by largest remainder.
        let mut quota: Vec<usize> = members.iter().map(|c| usize::from(m >= members.len() && !c.is_empty())).collect();
        let left = m - quota.iter().sum::<usize>();
        let exact: Vec<f64> = members.iter().map(|c| left as f64 * c.len() as f64 / n as f64).collect();
        for (q, e) in quota.iter_mut().zip(&exact) {
            *q += e.floor() as usize;
        }
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
        let mut short = m - quota.iter().sum::<usize>();
        // Classes are larger than their shares in total (m < n), so this ends.
        while short > 0 {
            for &c in &order {
                if short > 0 && quota[c] < members[c].len() {
                    quota[c] += 1;
                    short -= 1;
                }
            }
        }
        let mut picked: Vec<usize> = members
            .iter()
            .zip(&quota)
            .flat_map(|(c, &q)| {
                let q = q.min(c.len());
                (0..q).map(move |k| c[k * c.len() / q.max(1)])
            })
            .collect();
        picked.sort_unstable();
        picked
    }

    /// The state of an evaluation of the float plan (nothing quantized), made from the float
    /// reference without running anything: its cache shares the reference's values (model
    /// outputs, layers' inputs and outputs). It holds no per-tensor error sums, so evaluations
    /// from it are for `EvalConfig::model_only`.
    pub fn float_state(&self) -> Result<SimState> {
        let plan = QuantPlan::default();
        let proto = graph::simulated_proto(&self.model, &plan)?;
        let nodes_total = proto.graph.as_ref().map_or(0, |g| g.node.len());
        let first_output = self.model.summary.outputs[0].name.clone();
        Ok(SimState {
            proto: Some(proto),
            plan,
            cache: Some(cache::Cache::shared(&self.float)),
            outputs: [(first_output, self.float_predictions.clone())].into(),
            nodes_total,
            ..SimState::default()
        })
    }

    /// This float reference restricted to the samples `indices` (which must be in range): the
    /// float values are shared, not copied, and evaluations on it are estimates on those samples.
    #[must_use]
    pub fn on_samples(&self, indices: &[usize]) -> Self {
        let pick = |v: &Vec<Arc<ArrayD<f32>>>| indices.iter().map(|&i| Arc::clone(&v[i])).collect();
        Self {
            model: self.model.clone(),
            samples: indices.iter().map(|&i| self.samples[i].clone()).collect(),
            labels: self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect()),
            shapes: self.shapes.clone(),
            float: self.float.iter().map(|(t, v)| (t.clone(), pick(v))).collect(),
            float_runner: self.float_runner.clone(),
            float_predictions: indices.iter().map(|&i| self.float_predictions[i]).collect(),
            float_activations: self.float_activations.clone(),
            subset_room: 0,
            estimate: std::sync::OnceLock::new(),
        }
    }

    /// Whether the reference keeps every watched value (evaluations never recompute one).
    pub fn keeps_every_watched_value(&self) -> bool {
        self.float_runner.output_names.iter().all(|t| self.float.contains_key(t))
    }

    /// The reference restricted to the fixed subset of `m` samples ([`Simulator::subset`]). For
    /// the estimate subset ([`ESTIMATE_SAMPLES`]) it is made once and holds every watched value
    /// (those the whole set's reference does not keep are computed for its samples, in the room
    /// `new` set aside for them), so that estimates never recompute float values and cut the
    /// graph right at the changed layer.
    /// `cancel` stops the completing float run within one sample.
    pub fn estimate_subset(&self, m: usize, cancel: &std::sync::atomic::AtomicBool) -> Result<Arc<Self>> {
        if m != ESTIMATE_SAMPLES || self.subset_room == 0 {
            return Ok(Arc::new(self.on_samples(&self.subset(m))));
        }
        if let Some(s) = self.estimate.get() {
            return Ok(Arc::clone(s));
        }
        let mut sub = self.on_samples(&self.subset(m));
        let missing: Vec<(usize, &String)> =
            self.float_runner.output_names.iter().enumerate().filter(|(_, t)| !self.float.contains_key(*t)).collect();
        let mut values: BTreeMap<String, Vec<Arc<ArrayD<f32>>>> = BTreeMap::new();
        crate::model::parallel::run_map(
            sub.num_samples(),
            &|i| sub.float_runner.run_values(sub.inputs(i)),
            &mut |_, out| {
                for &(k, t) in &missing {
                    values.entry(t.clone()).or_default().push(Arc::new(out.to_array(k)?));
                }
                Ok(())
            },
            cancel,
        )?;
        sub.float.extend(values);
        Ok(Arc::clone(self.estimate.get_or_init(|| Arc::new(sub))))
    }

    /// The float value of watched `tensor` for sample `i`: kept, or in `recomputed` (the float
    /// runner's outputs for that sample).
    pub(super) fn reference<'a>(&'a self, tensor: &str, i: usize, recomputed: Option<&'a Values>) -> Result<&'a [f32]> {
        Ok(self.reference_value(tensor, i, recomputed)?.0)
    }

    /// As [`Simulator::reference`], with the value's shape.
    pub(super) fn reference_value<'a>(
        &'a self,
        tensor: &str,
        i: usize,
        recomputed: Option<&'a Values>,
    ) -> Result<(&'a [f32], &'a [usize])> {
        if let Some(v) = self.float.get(tensor) {
            let a = v.get(i).ok_or_else(|| Error::Runtime(format!("no sample {i} of '{tensor}'")))?;
            let values = a.as_slice().ok_or_else(|| Error::Runtime(format!("'{tensor}' is not contiguous")))?;
            return Ok((values, a.shape()));
        }
        let ix = self.float_runner.output_names.iter().position(|t| t == tensor);
        let (Some(ix), Some(values)) = (ix, recomputed) else {
            return Err(Error::Runtime(format!("no float reference for '{tensor}'")));
        };
        Ok((values.slice(ix)?, values.shape(ix)))
    }

    /// The float value of `tensor` for sample `i`, when cached.
    pub(crate) fn float_value(&self, tensor: &str, i: usize) -> Option<&ArrayD<f32>> {
        self.float.get(tensor).and_then(|v| v.get(i)).map(|a| &**a)
    }
}

/// The bytes of one sample's f32 value of a tensor listed in `sizes` (element counts; 0 if absent).
fn sample_bytes(sizes: &[(String, usize)]) -> impl Fn(&str) -> usize + '_ {
    let size: BTreeMap<&str, usize> = sizes.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    move |t| size.get(t).copied().unwrap_or(0).saturating_mul(4)
}

/// The room to set aside in the reference's `budget` for the estimate subset's watched values:
/// their bytes for [`ESTIMATE_SAMPLES`] samples when the whole set's do not all fit and these
/// take at most a third of the budget, else 0.
pub(super) fn subset_room(
    watch: &[String],
    outputs: &[&str],
    sizes: &[(String, usize)],
    samples: usize,
    budget: usize,
) -> usize {
    let bytes = sample_bytes(sizes);
    let per_sample =
        watch.iter().filter(|t| !outputs.contains(&t.as_str())).fold(0usize, |a, t| a.saturating_add(bytes(t)));
    let outputs_bytes = outputs.iter().fold(0usize, |a, o| a.saturating_add(bytes(o)));
    let whole = per_sample.saturating_add(outputs_bytes).saturating_mul(samples);
    let room = per_sample.saturating_mul(ESTIMATE_SAMPLES);
    if samples > ESTIMATE_SAMPLES && whole > budget && room <= budget / 3 { room } else { 0 }
}

/// The watched tensors whose float values the reference keeps: the model outputs always; then,
/// when the others do not all fit in `budget` bytes for `samples` samples, one in `k` of them
/// spread over the network (`k` the ratio of their bytes to the room left), and the rest of the
/// room in network order. An evaluation from the float reference with one layer changed
/// (sensitivity's enable-one) re-runs from the latest kept tensor before that layer: kept values
/// spread over the whole network bound that distance for every layer, where a prefix (the first
/// layers' large activations) would leave every later layer to re-run from near the input.
pub(super) fn kept_references(
    watch: &[String],
    outputs: &[&str],
    sizes: &[(String, usize)],
    samples: usize,
    budget: usize,
) -> BTreeSet<String> {
    let per_sample = sample_bytes(sizes);
    let bytes = |t: &str| per_sample(t).saturating_mul(samples);
    let mut kept: BTreeSet<String> = outputs.iter().map(|o| (*o).to_string()).collect();
    let mut used: usize = outputs.iter().map(|o| bytes(o)).sum();
    let rest: Vec<&String> = watch.iter().filter(|t| !outputs.contains(&t.as_str())).collect();
    let total = rest.iter().fold(0usize, |a, t| a.saturating_add(bytes(t)));
    let room = budget.saturating_sub(used);
    let mut take = |t: &String, kept: &mut BTreeSet<String>| {
        let b = bytes(t);
        if used.saturating_add(b) <= budget {
            used += b;
            kept.insert(t.clone());
        }
    };
    if total > room && room > 0 {
        for t in rest.iter().step_by(total.div_ceil(room)) {
            take(t, &mut kept);
        }
    }
    for t in &rest {
        if !kept.contains(*t) {
            take(t, &mut kept);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelve watched tensors of 100 elements and an output: everything when it fits; with room
    /// for three, one in four spread over the network (not the first three); with one tensor
    /// three times larger, one in five (5600 bytes for 1200 of room).
    #[test]
    fn kept_values_spread_over_the_network() {
        let watch: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let mut sizes: Vec<(String, usize)> = watch.iter().map(|t| (t.clone(), 100)).collect();
        sizes.push(("out".into(), 10));
        let kept = |budget: usize, sizes: &[(String, usize)]| {
            let k = kept_references(&watch, &["out"], sizes, 1, budget);
            watch.iter().filter(|t| k.contains(*t)).cloned().collect::<Vec<_>>()
        };
        assert_eq!(kept(40 + 12 * 400, &sizes), watch);
        assert_eq!(kept(40 + 3 * 400, &sizes), ["t0", "t4", "t8"]);
        sizes[4].1 = 300;
        assert_eq!(kept(40 + 3 * 400, &sizes), ["t0", "t5", "t10"]);
    }
}
