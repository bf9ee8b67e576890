//! The fast mixed-precision search's steps (`mixed.rs` has the search): path points estimated on
//! the subset, the target's crossing measured on the whole set.

use std::collections::BTreeMap;

use super::mixed::{PathPoint, Search, SearchStep, Target};
use crate::error::Result;
use crate::model::parallel::map_ordered;
use crate::plan::PlanFilter;
use crate::simulate::{SimState, Simulator, quantized_size_bytes};

/// Whole-set measurements of path points, memoised; the first one's state is the base of the
/// later (incremental) ones.
pub(super) struct Whole<'a> {
    pub(super) sim: &'a Simulator,
    pub(super) search: &'a Search<'a>,
    pub(super) levels: &'a [Vec<usize>],
    pub(super) base: Option<SimState>,
    pub(super) float_metric: Option<f64>,
    pub(super) known: BTreeMap<usize, PathPoint>,
}

impl Whole<'_> {
    /// Path point `i` on the whole set.
    pub(super) fn measure(&mut self, i: usize) -> Result<PathPoint> {
        if let Some(p) = self.known.get(&i) {
            return Ok(p.clone());
        }
        let search = self.search;
        let bits = search.bits(&self.levels[i]);
        let plan = search.plan(&bits, &PlanFilter::default())?;
        let (e, state) =
            self.sim.evaluate_from(self.base.as_ref(), &plan, &search.config, &mut |_| {}, search.cancel)?;
        if self.base.is_none() {
            self.base = Some(state);
        }
        let has_labels = e.metrics.quant_accuracy.is_some();
        self.float_metric = Some(if has_labels { e.metrics.float_accuracy.unwrap_or(1.0) } else { 1.0 });
        let p = Search::point(bits, &e, self.sim.num_samples());
        self.known.insert(i, p.clone());
        Ok(p)
    }

    /// Whether point `i`, measured on the whole set, meets an accuracy-drop target.
    fn meets_drop(&mut self, i: usize, points: f64) -> Result<bool> {
        let p = self.measure(i)?;
        Ok(meets(&p, Target::AccuracyDrop(points), self.float_metric.unwrap_or(1.0)))
    }
}

/// Whether `p` meets `target` (accuracy drops from `float_metric`).
pub(super) fn meets(p: &PathPoint, target: Target, float_metric: f64) -> bool {
    match target {
        Target::AccuracyDrop(points) => (float_metric - p.metric()) * 100.0 <= points + 1e-9,
        Target::SizeBytes(max) => p.size_bytes <= max,
    }
}

/// `count` path indices spread evenly over `0..len`, both ends included.
pub(super) fn spaced(len: usize, count: usize) -> Vec<usize> {
    if len <= count {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..count).map(|k| k * (len - 1) / (count - 1)).collect();
    v.dedup();
    v
}

/// The `picked` path points measured on the subset: the first alone (its state is the base),
/// the others two at a time from it.
pub(super) fn estimate(
    sub: &Simulator,
    search: &Search<'_>,
    levels: &[Vec<usize>],
    picked: &[usize],
    on_step: &mut dyn FnMut(SearchStep<'_>),
) -> Result<(BTreeMap<usize, PathPoint>, f64)> {
    let n = sub.num_samples();
    let total = picked.len();
    let mut out = BTreeMap::new();
    let bits0 = search.bits(&levels[picked[0]]);
    let plan0 = search.plan(&bits0, &PlanFilter::default())?;
    let (e0, base) = sub.evaluate_from(None, &plan0, &search.config, &mut |_| {}, search.cancel)?;
    let sub_float = if e0.metrics.quant_accuracy.is_some() { e0.metrics.float_accuracy.unwrap_or(1.0) } else { 1.0 };
    let p0 = Search::point(bits0, &e0, n);
    on_step(SearchStep::PathPoint { point: &p0, done: 1, total });
    out.insert(picked[0], p0);
    let rest = &picked[1..];
    let work = |k: usize| -> Result<PathPoint> {
        let bits = search.bits(&levels[rest[k]]);
        let plan = search.plan(&bits, &PlanFilter::default())?;
        let (e, _) = sub.evaluate_from(Some(&base), &plan, &search.config, &mut |_| {}, search.cancel)?;
        Ok(Search::point(bits, &e, n))
    };
    map_ordered(rest.len(), &work, &mut |k, p| {
        on_step(SearchStep::PathPoint { point: &p, done: out.len() + 1, total });
        out.insert(rest[k], p);
        Ok(())
    })?;
    Ok((out, sub_float))
}

/// Measures on the whole set the points where the subset's estimates meet the target.
pub(super) fn refine(
    whole: &mut Whole<'_>,
    estimates: &BTreeMap<usize, PathPoint>,
    sub_float: f64,
    target: Target,
    on_step: &mut dyn FnMut(SearchStep<'_>),
) -> Result<()> {
    let picked: Vec<usize> = estimates.keys().copied().collect();
    match target {
        Target::AccuracyDrop(points) => {
            // The last picked point whose estimate (against the subset's own float metric)
            // meets the target is where the whole set's crossing is looked for.
            let start = picked.iter().rposition(|i| meets(&estimates[i], target, sub_float)).unwrap_or(0);
            // Gallop from the estimated crossing to a bracket [lo meets, hi fails] of picked
            // points, then bisect the path between them.
            let (mut lo, mut hi) = if whole.meets_drop(picked[start], points)? {
                let mut k = start;
                while k + 1 < picked.len() && whole.meets_drop(picked[k + 1], points)? {
                    k += 1;
                }
                (Some(picked[k]), picked.get(k + 1).copied())
            } else {
                let mut k = start;
                while k > 0 && !whole.meets_drop(picked[k - 1], points)? {
                    k -= 1;
                }
                (k.checked_sub(1).map(|j| picked[j]), Some(picked[k]))
            };
            if let (Some(l), Some(h)) = (lo.as_mut(), hi.as_mut()) {
                while *h - *l > 1 {
                    let mid = usize::midpoint(*l, *h);
                    if whole.meets_drop(mid, points)? {
                        *l = mid;
                    } else {
                        *h = mid;
                    }
                }
            }
        }
        Target::SizeBytes(max) => {
            // Sizes need no data: the first path point within the size, and the two best
            // estimated ones beyond it.
            let size = |i: usize| -> Result<u64> {
                let plan = whole.search.plan(&whole.search.bits(&whole.levels[i]), &PlanFilter::default())?;
                Ok(quantized_size_bytes(whole.search.model, &plan))
            };
            let (mut a, mut b) = (0, whole.levels.len());
            while a < b {
                let mid = usize::midpoint(a, b);
                if size(mid)? <= max {
                    b = mid;
                } else {
                    a = mid + 1;
                }
            }
            if a < whole.levels.len() {
                let mut best: Vec<usize> = picked.iter().copied().filter(|&i| i > a).collect();
                best.sort_by(|x, y| estimates[y].metric().total_cmp(&estimates[x].metric()));
                for i in std::iter::once(a).chain(best.into_iter().take(2)) {
                    whole.measure(i)?;
                }
            }
        }
    }
    for (k, (_, p)) in whole.known.iter().enumerate() {
        on_step(SearchStep::PathPoint {
            point: p,
            done: picked.len() + k + 1,
            total: picked.len() + whole.known.len(),
        });
    }
    Ok(())
}
