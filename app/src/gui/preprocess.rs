//! The image-folder preprocessing form of the model & data panel: resize, centre crop, scale,
//! mean/std, channel order and layout as the core's [`Preprocess`] has them. "Apply" stores them
//! in the settings and re-loads the image-folder sets.

use quantbench_core::data::{ChannelOrder, Layout, Preprocess};

use super::actions::Action;

/// Default shorter side when resizing is switched on.
const DEFAULT_RESIZE: u32 = 256;

/// What the form holds while being edited (mean and std as typed).
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessForm {
    /// Resize the shorter side before the centre crop (else resize to the crop directly).
    pub resize: bool,
    /// The shorter side, when `resize`.
    pub resize_shorter: u32,
    /// Factor applied to 0-255 pixel values.
    pub scale: f32,
    /// Per-channel means, comma separated.
    pub mean: String,
    /// Per-channel standard deviations, comma separated.
    pub std: String,
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Layout (`None`: from the model input).
    pub layout: Option<Layout>,
    /// Why the last Apply was refused.
    pub error: Option<String>,
}

impl PreprocessForm {
    /// The form showing `p`.
    pub fn from_preprocess(p: &Preprocess) -> Self {
        let list = |v: &[f32]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        Self {
            resize: p.resize_shorter.is_some(),
            resize_shorter: p.resize_shorter.unwrap_or(DEFAULT_RESIZE),
            scale: p.scale,
            mean: list(&p.mean),
            std: list(&p.std),
            channel_order: p.channel_order,
            layout: p.layout,
            error: None,
        }
    }

    /// The settings the form describes, or why they are not valid.
    pub fn to_preprocess(&self) -> Result<Preprocess, String> {
        let parse = |what: &str, text: &str| -> Result<Vec<f32>, String> {
            let values = text
                .split([',', ' '])
                .filter(|t| !t.trim().is_empty())
                .map(|t| t.trim().parse::<f32>().map_err(|_| format!("{what}: '{}' is not a number", t.trim())))
                .collect::<Result<Vec<f32>, String>>()?;
            match values.len() {
                0 => Err(format!("{what}: give one value, or one per channel")),
                _ if values.iter().any(|v| !v.is_finite()) => Err(format!("{what}: values must be finite")),
                _ => Ok(values),
            }
        };
        let mean = parse("mean", &self.mean)?;
        let std = parse("std", &self.std)?;
        if std.contains(&0.0) {
            return Err("std: values must be non-zero".into());
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err("scale must be finite and non-zero".into());
        }
        if self.resize && self.resize_shorter == 0 {
            return Err("the resize size must be at least 1".into());
        }
        Ok(Preprocess {
            resize_shorter: self.resize.then_some(self.resize_shorter),
            scale: self.scale,
            mean,
            std,
            channel_order: self.channel_order,
            layout: self.layout,
        })
    }
}

/// Draws the form; "Apply" returns [`Action::ApplyPreprocess`] when the form is valid.
pub fn preprocess_ui(ui: &mut egui::Ui, form: &mut PreprocessForm, applied: &Preprocess, actions: &mut Vec<Action>) {
    egui::Grid::new("preprocess form").num_columns(2).show(ui, |ui| {
        ui.label("resize");
        ui.horizontal(|ui| {
            ui.checkbox(&mut form.resize, "shorter side to")
                .on_hover_text("Off: resize straight to the model's height and width");
            ui.add_enabled(form.resize, egui::DragValue::new(&mut form.resize_shorter).range(1..=8192).suffix(" px"));
        });
        ui.end_row();
        ui.label("crop");
        ui.weak("centre, to the model input");
        ui.end_row();
        ui.label("scale");
        ui.add(egui::DragValue::new(&mut form.scale).speed(0.0001).max_decimals(6))
            .on_hover_text("Pixel values 0-255 are multiplied by this (1/255 = 0.003922)");
        ui.end_row();
        ui.label("mean");
        ui.add(egui::TextEdit::singleline(&mut form.mean).desired_width(120.0))
            .on_hover_text("One value, or one per channel, comma separated");
        ui.end_row();
        ui.label("std");
        ui.add(egui::TextEdit::singleline(&mut form.std).desired_width(120.0))
            .on_hover_text("One value, or one per channel, comma separated");
        ui.end_row();
        ui.label("channels");
        ui.horizontal(|ui| {
            ui.radio_value(&mut form.channel_order, ChannelOrder::Rgb, "RGB");
            ui.radio_value(&mut form.channel_order, ChannelOrder::Bgr, "BGR");
        });
        ui.end_row();
        ui.label("layout");
        ui.horizontal(|ui| {
            ui.radio_value(&mut form.layout, None, "auto");
            ui.radio_value(&mut form.layout, Some(Layout::Nchw), "NCHW");
            ui.radio_value(&mut form.layout, Some(Layout::Nhwc), "NHWC");
        });
        ui.end_row();
    });
    let parsed = form.to_preprocess();
    let changed = parsed.as_ref() != Ok(applied);
    ui.horizontal(|ui| {
        if ui.add_enabled(changed, egui::Button::new("Apply")).on_hover_text("Re-load the image folders").clicked() {
            match &parsed {
                Ok(p) => {
                    form.error = None;
                    actions.push(Action::ApplyPreprocess(p.clone()));
                }
                Err(e) => form.error = Some(e.clone()),
            }
        }
        if ui.small_button("Reset").on_hover_text("Back to the applied settings").clicked() {
            *form = PreprocessForm::from_preprocess(applied);
        }
    });
    if let Err(e) = &parsed {
        ui.colored_label(ui.visuals().error_fg_color, e.as_str());
    } else if let Some(e) = &form.error {
        ui.colored_label(ui.visuals().error_fg_color, e.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_round_trips_and_refuses_bad_values() {
        let p = Preprocess {
            resize_shorter: Some(40),
            scale: 0.5,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            channel_order: ChannelOrder::Bgr,
            layout: Some(Layout::Nhwc),
        };
        let form = PreprocessForm::from_preprocess(&p);
        assert_eq!(form.mean, "0.485, 0.456, 0.406");
        assert_eq!(form.to_preprocess(), Ok(p));
        let check = |edit: &dyn Fn(&mut PreprocessForm), msg: &str| {
            let mut f = form.clone();
            edit(&mut f);
            let err = f.to_preprocess().expect_err(msg);
            assert!(err.contains(msg), "{err}");
        };
        check(&|f| f.mean = "0.5, x".into(), "mean: 'x' is not a number");
        check(&|f| f.std = String::new(), "std: give one value");
        check(&|f| f.std = "1, 0".into(), "std: values must be non-zero");
        check(&|f| f.mean = "inf".into(), "mean: values must be finite");
        check(&|f| f.scale = 0.0, "scale must be finite and non-zero");
        let mut f = form.clone();
        f.resize = false;
        f.mean = "0.5".into();
        assert_eq!(f.to_preprocess().map(|p| (p.resize_shorter, p.mean)), Ok((None, vec![0.5])));
    }
}
