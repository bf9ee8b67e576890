//! Calibrating on synthetic inputs: for a model opened without data, the user may choose random
//! inputs (a clearly flagged choice, never a silent fallback). The form asks for every input's
//! dimensions where the model leaves them dynamic, and says what the choice means.

use quantbench_core::model::{Dim, TensorInfo, shape_to_string};
use quantbench_core::worker::DataRole;

use super::actions::Action;
use super::context::ViewContext;
use super::tokens;

/// Samples a synthetic set has unless the user says otherwise.
pub const DEFAULT_SYNTHETIC_SAMPLES: usize = 32;

/// Shown wherever a synthetic set is in use.
pub const SYNTHETIC_WARNING: &str = "synthetic inputs: random data, not yours — ranges and errors are indicative only";

/// The form's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticForm {
    /// The role the set is for (`None`: the form is closed).
    pub role: Option<DataRole>,
    /// Per model input, the dimensions as typed (`1x3x224x224`).
    pub dims: Vec<String>,
    /// Number of samples.
    pub samples: usize,
    /// Whether to use a (differently seeded) synthetic set for evaluation too.
    pub also_evaluation: bool,
}

impl Default for SyntheticForm {
    fn default() -> Self {
        Self { role: None, dims: Vec::new(), samples: DEFAULT_SYNTHETIC_SAMPLES, also_evaluation: true }
    }
}

impl SyntheticForm {
    /// Opens the form for `role`, the dimensions prefilled from `inputs`: fixed ones as declared,
    /// a dynamic first (batch) axis as 1, other dynamic ones left for the user.
    pub fn open(&mut self, role: DataRole, inputs: &[TensorInfo]) {
        self.role = Some(role);
        self.also_evaluation = role == DataRole::Calibration;
        self.dims = inputs
            .iter()
            .map(|i| {
                let dims: Vec<String> = i
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(k, d)| match d {
                        Dim::Fixed(n) => n.to_string(),
                        Dim::Symbolic(_) if k == 0 => "1".into(),
                        Dim::Symbolic(_) => "?".into(),
                    })
                    .collect();
                dims.join("x")
            })
            .collect();
    }
}

/// Parses typed dimensions for `input`: one positive size per axis, equal to the declared size
/// where it is fixed. Returns the shape of one sample (the first, batch, axis dropped).
pub fn parse_dims(input: &TensorInfo, text: &str) -> Result<Vec<usize>, String> {
    let parts: Vec<&str> = text.split(['x', 'X', ',', ' ']).filter(|s| !s.is_empty()).collect();
    if parts.len() != input.shape.len() {
        return Err(format!(
            "{} dims for a rank-{} input {}",
            parts.len(),
            input.shape.len(),
            shape_to_string(&input.shape)
        ));
    }
    let mut dims = Vec::with_capacity(parts.len());
    for (k, (p, declared)) in parts.iter().zip(&input.shape).enumerate() {
        let n: usize =
            p.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("dim {k}: give a positive size, not '{p}'"))?;
        if let Dim::Fixed(f) = declared
            && u64::try_from(n).ok() != Some(*f)
        {
            return Err(format!("dim {k} is fixed at {f} by the model"));
        }
        dims.push(n);
    }
    Ok(dims[1..].to_vec())
}

/// Bytes a synthetic set may hold (the evaluation set is kept in memory whole).
pub const MAX_SYNTHETIC_BYTES: u64 = 1 << 30;

/// Why a synthetic set of `samples` samples of these shapes is too large, if it is.
pub fn too_large(shapes: &[Vec<usize>], samples: usize) -> Option<String> {
    let per_sample: u64 = shapes.iter().map(|s| s.iter().map(|&d| d as u64).product::<u64>()).sum();
    let bytes = per_sample.saturating_mul(samples as u64).saturating_mul(4);
    (bytes > MAX_SYNTHETIC_BYTES).then(|| {
        format!(
            "{:.1} GiB of inputs (at most {} GiB): fewer samples or smaller dims",
            bytes as f64 / f64::from(1u32 << 30),
            MAX_SYNTHETIC_BYTES >> 30
        )
    })
}

/// Draws the form when open.
pub fn synthetic_window(
    ctx: &ViewContext,
    form: &mut SyntheticForm,
    egui_ctx: &egui::Context,
    actions: &mut Vec<Action>,
) {
    let (Some(role), Some(summary)) = (form.role, &ctx.session.summary) else { return };
    let mut open = true;
    let mut done = false;
    egui::Window::new("Synthetic inputs").open(&mut open).resizable(false).collapsible(false).show(egui_ctx, |ui| {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "Random inputs (standard normal floats, 0/1 integers): the activation ranges will be those of \
             noise, not of your data. Use them to explore a model you have no data for; everything they \
             produce is flagged \"synthetic\".",
        );
        ui.add_space(tokens::SECTION_SPACE / 2.0);
        form.dims.resize(summary.inputs.len(), String::new());
        let mut shapes = Vec::new();
        let mut problems = Vec::new();
        egui::Grid::new("synthetic dims").num_columns(3).show(ui, |ui| {
            for (input, text) in summary.inputs.iter().zip(&mut form.dims) {
                ui.label(&input.name).on_hover_text(format!("{} {}", input.elem_type, shape_to_string(&input.shape)));
                ui.add(egui::TextEdit::singleline(text).desired_width(160.0));
                match parse_dims(input, text) {
                    Ok(s) => {
                        ui.weak(shape_to_string(&input.shape));
                        shapes.push(s);
                    }
                    Err(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, &e);
                        problems.push(e);
                    }
                }
                ui.end_row();
            }
        });
        ui.horizontal(|ui| {
            ui.label("Samples:");
            ui.add(egui::DragValue::new(&mut form.samples).range(1..=4096));
            if role == DataRole::Calibration {
                ui.checkbox(&mut form.also_evaluation, "also as the evaluation set");
            }
        });
        if problems.is_empty()
            && let Some(e) = too_large(&shapes, form.samples)
        {
            ui.colored_label(ui.visuals().error_fg_color, &e);
            problems.push(e);
        }
        ui.horizontal(|ui| {
            let label = match role {
                DataRole::Calibration => "Calibrate on synthetic inputs",
                DataRole::Evaluation => "Evaluate on synthetic inputs",
            };
            if ui.add_enabled(problems.is_empty(), egui::Button::new(label)).clicked() {
                actions.push(Action::LoadSynthetic(role, shapes.clone(), form.samples));
                if role == DataRole::Calibration && form.also_evaluation {
                    actions.push(Action::LoadSynthetic(DataRole::Evaluation, shapes.clone(), form.samples));
                }
                done = true;
            }
            if ui.button("Close").clicked() {
                done = true;
            }
        });
    });
    if !open || done {
        form.role = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_dims_fill_the_dynamic_ones_and_respect_the_fixed_ones() {
        let input = TensorInfo {
            name: "x".into(),
            elem_type: "float32".into(),
            shape: vec![
                Dim::Symbolic("batch".into()),
                Dim::Fixed(3),
                Dim::Symbolic("h".into()),
                Dim::Symbolic("w".into()),
            ],
        };
        let mut form = SyntheticForm::default();
        form.open(DataRole::Calibration, std::slice::from_ref(&input));
        assert_eq!(form.dims, ["1x3x?x?"]);
        assert!(parse_dims(&input, &form.dims[0]).unwrap_err().contains("positive size"));
        assert_eq!(parse_dims(&input, "1x3x48x192"), Ok(vec![3, 48, 192]));
        assert_eq!(parse_dims(&input, "2, 3, 8, 8"), Ok(vec![3, 8, 8]));
        assert!(parse_dims(&input, "1x4x48x192").unwrap_err().contains("fixed at 3"));
        assert!(parse_dims(&input, "1x3x48").unwrap_err().contains("rank-4"));
        assert!(parse_dims(&input, "1x3x0x5").is_err());
        assert!(too_large(&[vec![3, 48, 192]], 32).is_none());
        let big = too_large(&[vec![3, 4096, 4096]], 64).expect("12 GiB is too large");
        assert!(big.contains("12.0 GiB"), "{big}");
    }
}
