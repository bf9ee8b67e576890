//! The CSV of every analysis view: the sensitivity bars, the bit sweep and the mixed-precision
//! path, one row per layer (or path point).

use std::fmt::Write as _;

use quantbench_core::model::ModelSummary;

use super::analysis::{MixedRun, SensitivityRun};

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// CSV of a sensitivity run: one row per layer, network order.
pub fn sensitivity_csv(run: &SensitivityRun, summary: Option<&ModelSummary>) -> String {
    let mut out = String::from("index,layer,op,metric,enable_one,disable_one,weights_only,activations_only\n");
    let metric = serde_json::to_value(run.metric).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    for (i, l) in run.layers.iter().enumerate() {
        let op = summary.and_then(|s| s.layer(&l.name)).map_or("", |s| s.op_type.as_str());
        let _ = writeln!(
            out,
            "{i},{},{},{metric},{},{},{},{}",
            csv_field(&l.name),
            csv_field(op),
            l.enable_one,
            l.disable_one,
            l.weights_only,
            l.activations_only
        );
    }
    out
}

/// CSV of the bit sweep: one row per layer, a weights and an activations column per bit width.
pub fn sweep_csv(run: &SensitivityRun) -> String {
    let mut out = String::from("layer");
    for b in &run.bits {
        let _ = write!(out, ",w{b}");
    }
    for b in &run.bits {
        let _ = write!(out, ",a{b}");
    }
    out.push('\n');
    for l in &run.layers {
        out.push_str(&csv_field(&l.name));
        for b in &run.bits {
            let v = l.sweep.iter().find(|p| p.bits == *b).map_or(f64::NAN, |p| p.weights);
            let _ = write!(out, ",{v}");
        }
        for b in &run.bits {
            let v = l.sweep.iter().find(|p| p.bits == *b).map_or(f64::NAN, |p| p.activations);
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
    }
    out
}

/// CSV of a mixed-precision search: one row per path point, with each layer's weight bits.
pub fn pareto_csv(run: &MixedRun) -> String {
    let mut out = String::from("point,size_bytes,accuracy,top1_agreement,output_sqnr_db,pareto,chosen,samples");
    let layers: Vec<&str> =
        run.result.path.first().map(|p| p.bits.iter().map(|(l, _)| l.as_str()).collect()).unwrap_or_default();
    for l in &layers {
        let _ = write!(out, ",{}", csv_field(&format!("w_bits:{l}")));
    }
    out.push('\n');
    for (i, p) in run.result.path.iter().enumerate() {
        let accuracy = p.accuracy.map(|a| a.to_string()).unwrap_or_default();
        let chosen = run.result.chosen == Some(i);
        let _ = write!(
            out,
            "{i},{},{accuracy},{},{},{},{chosen},{}",
            p.size_bytes, p.top1_agreement, p.output_sqnr_db, p.pareto, p.samples
        );
        for (_, b) in &p.bits {
            let _ = write!(out, ",{b}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use quantbench_core::analysis::{MixedPrecision, PathPoint, Target};

    use super::super::analysis::tests::run;
    use super::*;

    #[test]
    fn csv_has_one_row_per_layer_and_quotes_names() {
        let csv = sensitivity_csv(&run(), None);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert_eq!(lines[0], "index,layer,op,metric,enable_one,disable_one,weights_only,activations_only");
        assert_eq!(lines[1], "0,a,,accuracy,0.9,0.5,0.9,1");
        assert_eq!(lines[2], "1,\"b,\"\"x\"\"\",,accuracy,0.7,0.6,0.7,1");
        let sweep = sweep_csv(&run());
        assert_eq!(sweep.lines().next(), Some("layer,w2,w8,a2,a8"));
        assert_eq!(sweep.lines().nth(3), Some("c,0.5,0.98,0.75,0.99"));
    }

    #[test]
    fn pareto_csv_marks_chosen_and_front() {
        let point = |bits: u8, size_bytes, acc| PathPoint {
            bits: vec![("fc1".into(), bits), ("fc2".into(), 8)],
            size_bytes,
            accuracy: Some(acc),
            top1_agreement: 1.0,
            output_sqnr_db: 30.0,
            pareto: true,
            samples: 100,
        };
        let m = MixedRun {
            revision: 1,
            target: Target::AccuracyDrop(1.0),
            result: MixedPrecision {
                path: vec![point(8, 100, 0.99), point(4, 80, 0.98)],
                chosen: Some(1),
                float_metric: 0.99,
            },
            applied: None,
        };
        let csv = pareto_csv(&m);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "point,size_bytes,accuracy,top1_agreement,output_sqnr_db,pareto,chosen,samples,w_bits:fc1,w_bits:fc2"
        );
        assert_eq!(lines[2], "1,80,0.98,1,30,true,true,100,4,8");
        assert_eq!(lines.len(), 3);
    }
}
