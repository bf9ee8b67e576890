//! The egui workbench. Long work never runs on the UI thread: models load on a background thread
//! and results arrive over a bounded channel, followed by a repaint request.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender, bounded};
use quantbench_core::model::{ModelSummary, OnnxModel, shape_to_string};

use crate::samples;

/// Starts the GUI, opening `model` or the default bundled sample.
pub fn run(model: Option<PathBuf>) -> anyhow::Result<()> {
    let start =
        model.or_else(|| samples::models().into_iter().find(|(n, _)| n == samples::DEFAULT_SAMPLE).map(|m| m.1));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]).with_title("QuantBench"),
        ..Default::default()
    };
    eframe::run_native(
        "QuantBench",
        options,
        Box::new(move |cc| {
            let mut app = WorkbenchApp::new(cc.egui_ctx.clone());
            if let Some(path) = start {
                app.open(path);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the GUI: {e}"))
}

/// Result of a background load.
type Loaded = (PathBuf, Result<OnnxModel, String>);

/// The application state.
pub struct WorkbenchApp {
    ctx: egui::Context,
    model: Option<OnnxModel>,
    loading: Option<PathBuf>,
    errors: Vec<String>,
    tx: Sender<Loaded>,
    rx: Receiver<Loaded>,
    node_filter: String,
}

impl WorkbenchApp {
    /// A new app with nothing loaded.
    pub fn new(ctx: egui::Context) -> Self {
        let (tx, rx) = bounded(4);
        Self { ctx, model: None, loading: None, errors: Vec::new(), tx, rx, node_filter: String::new() }
    }

    /// Starts loading `path` in the background.
    pub fn open(&mut self, path: PathBuf) {
        self.loading = Some(path.clone());
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(|| OnnxModel::load(&path).map_err(|e| e.to_string()))
                .unwrap_or_else(|_| Err("internal error while loading the model".to_string()));
            let _ = tx.send((path, result));
            ctx.request_repaint();
        });
    }

    fn pick_file(&mut self) {
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            if let Some(path) = rfd::FileDialog::new().add_filter("ONNX model", &["onnx"]).pick_file() {
                let result = OnnxModel::load(&path).map_err(|e| e.to_string());
                let _ = tx.send((path, result));
                ctx.request_repaint();
            }
        });
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open model…").clicked() {
                    self.pick_file();
                }
                ui.menu_button("Sample models", |ui| {
                    for (name, path) in samples::models() {
                        if ui.button(name).clicked() {
                            self.open(path);
                        }
                    }
                });
            });
            if let Some(p) = &self.loading {
                ui.spinner();
                ui.label(format!("loading {}", p.display()));
            }
        });
    }

    fn errors_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, e) in self.errors.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().error_fg_color, format!("⚠ {e}"));
                if ui.small_button("dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.errors.remove(i);
        }
    }
}

fn summary_ui(ui: &mut egui::Ui, s: &ModelSummary) {
    ui.heading(&s.name);
    egui::Grid::new("summary").num_columns(2).striped(true).show(ui, |ui| {
        ui.label("opset");
        ui.label(s.opset.to_string());
        ui.end_row();
        ui.label("parameters");
        ui.label(s.param_count.to_string());
        ui.end_row();
        ui.label("float size");
        ui.label(format!("{:.1} KiB", s.float_size_bytes as f64 / 1024.0));
        ui.end_row();
        ui.label("quantizable layers");
        ui.label(s.layers.len().to_string());
        ui.end_row();
    });
    ui.separator();
    for (label, list) in [("Inputs", &s.inputs), ("Outputs", &s.outputs)] {
        ui.strong(label);
        for t in list {
            ui.label(format!("{}  {}  {}", t.name, t.elem_type, shape_to_string(&t.shape)));
        }
    }
    ui.separator();
    ui.strong("Operators");
    for (op, n) in &s.op_counts {
        ui.label(format!("{op} × {n}"));
    }
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok((path, result)) = self.rx.try_recv() {
            if self.loading.as_ref() == Some(&path) {
                self.loading = None;
            }
            match result {
                Ok(model) => self.model = Some(model),
                Err(e) => self.errors.push(e),
            }
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if let Some(p) = dropped.into_iter().next() {
            self.open(p);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        if !self.errors.is_empty() {
            egui::Panel::bottom("errors").show(ui, |ui| self.errors_ui(ui));
        }
        if let Some(model) = &self.model {
            egui::Panel::left("summary").show(ui, |ui| summary_ui(ui, &model.summary));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(model) = &self.model else {
                ui.label("Open an ONNX model (File ▸ Open model…) or drop one here");
                return;
            };
            ui.horizontal(|ui| {
                ui.label("filter");
                ui.text_edit_singleline(&mut self.node_filter);
            });
            let filter = self.node_filter.to_lowercase();
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("nodes").striped(true).num_columns(4).show(ui, |ui| {
                    for h in ["node", "op", "inputs", "outputs"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for n in model.summary.nodes.iter().filter(|n| {
                        filter.is_empty()
                            || n.name.to_lowercase().contains(&filter)
                            || n.op_type.to_lowercase().contains(&filter)
                    }) {
                        ui.label(&n.name);
                        ui.label(&n.op_type);
                        ui.label(n.inputs.join(", "));
                        ui.label(n.outputs.join(", "));
                        ui.end_row();
                    }
                });
            });
        });
    }
}
