//! The layer table: one row per quantizable layer, virtualised, sortable, filterable, with
//! per-cell editing, multi-select and bulk edits.

use std::collections::BTreeMap;

use egui_extras::{Column, TableBuilder};
use quantbench_core::observe::Observer;
use quantbench_core::quant::recipe::Recipe;
use quantbench_core::quant::{
    CpuInt8, Granularity, LayerConfig, RUNTIME_PROFILES, RuntimeProfile, TARGETS, WEIGHT_FORMATS,
};
use quantbench_core::simulate::LayerResult;

use super::actions::{Action, SelectMode};
use super::context::ViewContext;
use super::sensitivity::SensitivityColumn;
use super::tokens;

/// Sortable columns of the layer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Network order.
    Order,
    /// Layer name.
    Name,
    /// Operator type.
    Op,
    /// Weight bits.
    WBits,
    /// Activation bits.
    ABits,
    /// Local SQNR.
    Local,
    /// Accumulated SQNR.
    Accumulated,
    /// Sensitivity (enable-one metric of the last sensitivity run).
    Sensitivity,
}

/// View state of the layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableState {
    /// Filter text (name or op, case-insensitive).
    pub filter: String,
    /// Sort column.
    pub sort: SortColumn,
    /// Ascending order.
    pub ascending: bool,
    /// The visible rows as last drawn (indices in network order), for shift-click ranges.
    pub visible: Vec<usize>,
}

impl Default for TableState {
    fn default() -> Self {
        Self { filter: String::new(), sort: SortColumn::Order, ascending: true, visible: Vec::new() }
    }
}

/// Bit widths offered in the combo boxes.
pub const BIT_CHOICES: [u8; 8] = [2, 3, 4, 5, 6, 7, 8, 16];

/// A short, readable observer name.
pub fn observer_label(o: &Observer) -> String {
    match o {
        Observer::MinMax => "MinMax".into(),
        Observer::Ema { constant } => format!("EMA {constant}"),
        Observer::Percentile { percentile } => format!("Percentile {percentile}"),
        Observer::Entropy { .. } => "Entropy".into(),
        Observer::Mse => "MSE".into(),
        Observer::Manual { .. } => "Manual".into(),
    }
}

fn granularity_label(g: Granularity) -> String {
    match g {
        Granularity::PerTensor => "per-tensor".into(),
        Granularity::PerChannel => "per-channel".into(),
        Granularity::PerGroup { group_size } => format!("group {group_size}"),
    }
}

fn bits_combo(ui: &mut egui::Ui, id: impl egui::AsIdSalt, bits: &mut u8, enabled: bool) -> bool {
    let mut changed = false;
    ui.add_enabled_ui(enabled, |ui| {
        egui::ComboBox::from_id_salt(id).width(48.0).selected_text(bits.to_string()).show_ui(ui, |ui| {
            for b in BIT_CHOICES {
                changed |= ui.selectable_value(bits, b, b.to_string()).changed();
            }
        });
    });
    changed
}

fn observer_combo(ui: &mut egui::Ui, id: impl egui::AsIdSalt, observer: &mut Observer, enabled: bool) -> bool {
    let mut changed = false;
    ui.add_enabled_ui(enabled, |ui| {
        egui::ComboBox::from_id_salt(id).width(92.0).selected_text(observer_label(observer)).show_ui(ui, |ui| {
            // A manual range is set in the layer detail (typed or dragged); here it can be kept.
            if let Observer::Manual { min, max } = *observer {
                ui.selectable_label(true, "Manual").on_hover_text(format!("[{min}, {max}]"));
            }
            for o in Observer::ALL {
                changed |= ui.selectable_value(observer, o, observer_label(&o)).changed();
            }
        });
    });
    changed
}

fn granularity_combo(ui: &mut egui::Ui, id: impl egui::AsIdSalt, g: &mut Granularity, enabled: bool) -> bool {
    let mut changed = false;
    ui.add_enabled_ui(enabled, |ui| {
        egui::ComboBox::from_id_salt(id).width(86.0).selected_text(granularity_label(*g)).show_ui(ui, |ui| {
            for choice in [
                Granularity::PerTensor,
                Granularity::PerChannel,
                Granularity::PerGroup { group_size: 32 },
                Granularity::PerGroup { group_size: 64 },
                Granularity::PerGroup { group_size: 128 },
            ] {
                changed |= ui.selectable_value(g, choice, granularity_label(choice)).changed();
            }
        });
    });
    changed
}

/// The runtime profile: whose integer arithmetic the simulation reproduces. The local CPU's
/// profile is marked; a saturating profile says which default it chose to avoid overflow.
fn runtime_ui(ui: &mut egui::Ui, recipe: &Recipe, actions: &mut Vec<Action>) {
    let local = CpuInt8::local();
    let here = local.profile();
    let label = |p: RuntimeProfile| if p == here { format!("{p} (this CPU)") } else { p.to_string() };
    ui.horizontal_wrapped(|ui| {
        ui.strong("Runtime:");
        let mut chosen = recipe.runtime;
        egui::ComboBox::from_id_salt("runtime profile")
            .width(170.0)
            .selected_text(label(chosen))
            .show_ui(ui, |ui| {
                for p in RUNTIME_PROFILES {
                    ui.selectable_value(&mut chosen, p, label(p)).on_hover_text(p.description());
                }
            })
            .response
            .on_hover_text(format!("{}\nThis CPU: {}", recipe.runtime.description(), local.describe()));
        if chosen != recipe.runtime {
            actions.push(Action::SetRuntime(chosen));
        }
        ui.strong("Placement:");
        let mut target = recipe.target;
        egui::ComboBox::from_id_salt("placement target")
            .width(90.0)
            .selected_text(target.name())
            .show_ui(ui, |ui| {
                for (t, name) in TARGETS {
                    ui.selectable_value(&mut target, t, name).on_hover_text(t.description());
                }
            })
            .response
            .on_hover_text(recipe.target.description());
        if target != recipe.target {
            actions.push(Action::SetTarget(target));
        }
        let mut weights_only = recipe.weights_only;
        if ui.checkbox(&mut weights_only, "weights only").on_hover_text(WEIGHTS_ONLY_HELP).changed() {
            actions.push(Action::SetWeightsOnly(weights_only));
        }
        ui.label("blocks as");
        let mut format = recipe.weight_format;
        egui::ComboBox::from_id_salt("weight format")
            .width(100.0)
            .selected_text(format.name())
            .show_ui(ui, |ui| {
                for (f, name) in WEIGHT_FORMATS {
                    ui.selectable_value(&mut format, f, name);
                }
            })
            .response
            .on_hover_text(WEIGHT_FORMAT_HELP);
        if format != recipe.weight_format {
            actions.push(Action::SetWeightFormat(format));
        }
        if recipe.runtime.saturates_u8s8_pairs() {
            let note = if recipe.defaults.weight.bits <= recipe.runtime.default_weight_bits() {
                format!(
                    "sums u8×s8 pairs in int16 with saturation: default weights use {} bits (as ORT's reduce_range), which cannot overflow",
                    recipe.defaults.weight.bits
                )
            } else {
                "sums u8×s8 pairs in int16 with saturation: 8-bit weights can overflow (simulated as the runtime does; 7 bits avoid it)".to_string()
            };
            ui.label(egui::RichText::new(note).color(tokens::OUTDATED));
        }
    });
}

/// What the weights-only checkbox does.
const WEIGHTS_ONLY_HELP: &str = "Quantize only the layers' weights (as ONNX Runtime's MatMulNBits quantizer, GPTQ, AWQ, \
                                 HQQ do for transformers): activations stay float, nothing needs calibrating";

/// What the weight-format choice does.
const WEIGHT_FORMAT_HELP: &str = "How per-group (block) weights of MatMul/Gemm layers are exported: qdq = ONNX \
                                  DequantizeLinear with block_size and INT4 weights (opset 21); matmulnbits = ONNX \
                                  Runtime's MatMulNBits";

/// What the power-of-two checkbox does.
const POW2_HELP: &str = "Round every scale up to a power of two (weights, activations, hence int32 biases), as integer \
                         accelerators that rescale by shifts need (usually with the npu placement)";

/// One editable configuration row outside the table (the defaults).
fn defaults_ui(ui: &mut egui::Ui, defaults: &LayerConfig, actions: &mut Vec<Action>) {
    let mut c = *defaults;
    let mut changed = false;
    ui.horizontal(|ui| {
        ui.strong("Defaults:");
        ui.label("W");
        changed |= bits_combo(ui, "defaults w", &mut c.weight.bits, true);
        ui.label("A");
        changed |= bits_combo(ui, "defaults a", &mut c.activation.bits, true);
        changed |= observer_combo(ui, "defaults observer", &mut c.activation.observer, true);
        changed |= granularity_combo(ui, "defaults granularity", &mut c.weight.granularity, true);
        let mut pow2 = c.weight.power_of_two && c.activation.power_of_two;
        if ui.checkbox(&mut pow2, "pow2 scales").on_hover_text(POW2_HELP).changed() {
            (c.weight.power_of_two, c.activation.power_of_two) = (pow2, pow2);
            changed = true;
        }
    });
    if changed {
        actions.push(Action::SetDefaults(c));
    }
}

/// Bulk edits of the selection and of every layer of one op type.
fn bulk_ui(ctx: &ViewContext, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    let (Some(summary), Some(recipe)) = (&ctx.session.summary, &ctx.session.recipe) else { return };
    let selected: Vec<&str> = ctx.selection.selected.iter().map(String::as_str).collect();
    let edit = |names: &[&str], f: &dyn Fn(&mut LayerConfig)| -> Action {
        Action::UpdateLayers(
            names
                .iter()
                .map(|n| {
                    let mut c = recipe.config_for(n);
                    f(&mut c);
                    (n.to_string(), Some(c))
                })
                .collect(),
        )
    };
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("{} selected:", selected.len()));
        ui.add_enabled_ui(!selected.is_empty(), |ui| {
            for bits in [2u8, 4, 8] {
                if ui.button(format!("Selected: W{bits}")).clicked() {
                    actions.push(edit(&selected, &|c| c.weight.bits = bits));
                }
            }
            if ui.button("Selected: A16").clicked() {
                actions.push(edit(&selected, &|c| c.activation.bits = 16));
            }
            if ui.button("Selected: keep float").clicked() {
                actions.push(edit(&selected, &|c| c.keep_float = true));
            }
            if ui.button("Selected: defaults").clicked() {
                actions.push(Action::UpdateLayers(selected.iter().map(|n| (n.to_string(), None)).collect()));
            }
            ui.menu_button("Selected observer", |ui| {
                for o in Observer::ALL {
                    if ui.button(observer_label(&o)).clicked() {
                        actions.push(edit(&selected, &|c| c.activation.observer = o));
                    }
                }
            });
        });
        ui.separator();
        ui.menu_button("By op type", |ui| {
            for op in summary.layers.iter().map(|l| l.op_type.as_str()).collect::<std::collections::BTreeSet<_>>() {
                let names: Vec<&str> =
                    summary.layers.iter().filter(|l| l.op_type == op).map(|l| l.name.as_str()).collect();
                for bits in [4u8, 8] {
                    if ui.button(format!("All {op} : W{bits}")).clicked() {
                        actions.push(edit(&names, &|c| c.weight.bits = bits));
                    }
                }
                if ui.button(format!("All {op} : keep float")).clicked() {
                    actions.push(edit(&names, &|c| c.keep_float = true));
                }
            }
        });
    });
}

fn sqnr_cell(ui: &mut egui::Ui, sqnr: Option<f64>, stale: bool) {
    let Some(v) = sqnr else {
        ui.weak("—");
        return;
    };
    let text = if v.is_infinite() { "exact".to_string() } else { format!("{v:.1} dB") };
    if stale {
        ui.label(egui::RichText::new(text).color(tokens::STALE).italics()).on_hover_text("of an earlier configuration");
    } else {
        let color = tokens::sqnr_color(v);
        ui.painter().rect_filled(ui.max_rect(), 2.0, color.gamma_multiply(0.35));
        ui.label(egui::RichText::new(text).strong());
    }
}

/// Sort key of a row for a column (numbers; names sort separately).
fn number_key(
    col: SortColumn,
    i: usize,
    config: &LayerConfig,
    result: Option<&&LayerResult>,
    sensitivity: Option<f64>,
) -> f64 {
    let sq = |v: Option<f64>| v.map_or(f64::NEG_INFINITY, |x| if x.is_nan() { f64::NEG_INFINITY } else { x });
    match col {
        SortColumn::WBits => f64::from(if config.keep_float { 32 } else { config.weight.bits }),
        SortColumn::ABits => f64::from(if config.keep_float { 32 } else { config.activation.bits }),
        SortColumn::Local => sq(result.and_then(|r| r.local.as_ref()).map(|m| m.sqnr_db)),
        SortColumn::Accumulated => sq(result.map(|r| r.accumulated.sqnr_db)),
        SortColumn::Sensitivity => sq(sensitivity),
        _ => i as f64,
    }
}

/// Draws the filter, the defaults, bulk edits and the table.
// The table's columns are one builder chain; splitting it would obscure the layout.
#[allow(clippy::too_many_lines)]
pub fn table_ui(ctx: &ViewContext, state: &mut TableState, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.label("Filter:");
        ui.add(egui::TextEdit::singleline(&mut state.filter).hint_text("name or op").desired_width(180.0));
        if !state.filter.is_empty() && ui.small_button("Clear").clicked() {
            state.filter.clear();
        }
    });
    if let Some(recipe) = &ctx.session.recipe {
        runtime_ui(ui, recipe, actions);
        if let Some(summary) = &ctx.session.summary {
            super::placement::float_ops_ui(ui, summary, recipe, actions);
            super::placement::quantized_ui(ctx, ui, recipe, actions);
        }
        defaults_ui(ui, &recipe.defaults, actions);
    }
    bulk_ui(ctx, ui, actions);
    let results_state = ctx.results;
    if results_state.is_old() && ctx.session.evaluation.is_some() {
        ui.horizontal(|ui| {
            super::summary::results_state_ui(ui, results_state, Some("(SQNR columns show an earlier configuration)"));
        });
    }
    ui.separator();

    let (Some(summary), Some(recipe)) = (&ctx.session.summary, &ctx.session.recipe) else { return };
    let stale = results_state.is_old();
    let results: BTreeMap<&str, &LayerResult> = ctx
        .session
        .evaluation
        .as_ref()
        .map(|(_, e)| e.layers.iter().map(|l| (l.name.as_str(), l)).collect())
        .unwrap_or_default();
    let sensitivity = SensitivityColumn::new(ctx.analysis);
    let filter = state.filter.to_lowercase();
    let mut rows: Vec<usize> = (0..summary.layers.len())
        .filter(|&i| {
            let l = &summary.layers[i];
            filter.is_empty() || l.name.to_lowercase().contains(&filter) || l.op_type.to_lowercase().contains(&filter)
        })
        .collect();
    let sort = state.sort;
    match sort {
        SortColumn::Order => {}
        SortColumn::Name => rows.sort_by(|&a, &b| summary.layers[a].name.cmp(&summary.layers[b].name)),
        SortColumn::Op => rows.sort_by(|&a, &b| summary.layers[a].op_type.cmp(&summary.layers[b].op_type)),
        _ => rows.sort_by(|&a, &b| {
            let key = |i: usize| {
                let name = summary.layers[i].name.as_str();
                number_key(sort, i, &recipe.config_for(name), results.get(name), sensitivity.key(name))
            };
            key(a).total_cmp(&key(b))
        }),
    }
    if !state.ascending {
        rows.reverse();
    }
    state.visible.clone_from(&rows);

    let mut clicked_sort = None;
    let header = |ui: &mut egui::Ui,
                  label: &str,
                  col: SortColumn,
                  current: SortColumn,
                  asc: bool,
                  out: &mut Option<SortColumn>| {
        let arrow = if col == current { if asc { " (asc)" } else { " (desc)" } } else { "" };
        if ui.add(egui::Button::new(egui::RichText::new(format!("{label}{arrow}")).strong()).frame(false)).clicked() {
            *out = Some(col);
        }
    };
    let asc = state.ascending;
    let modifiers = ui.input(|i| i.modifiers);
    TableBuilder::new(ui)
        .id_salt("layer table")
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::exact(28.0))
        .column(Column::initial(120.0).at_least(70.0).clip(true))
        .column(Column::initial(64.0).clip(true))
        .columns(Column::initial(52.0), 2)
        .column(Column::initial(104.0))
        .column(Column::initial(98.0))
        .column(Column::initial(38.0))
        .columns(Column::initial(86.0), 2)
        .column(Column::initial(86.0))
        .header(24.0, |mut h| {
            h.col(|ui| header(ui, "#", SortColumn::Order, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "Layer", SortColumn::Name, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "Op", SortColumn::Op, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "W bits", SortColumn::WBits, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "A bits", SortColumn::ABits, sort, asc, &mut clicked_sort));
            h.col(|ui| {
                ui.strong("Observer");
            });
            h.col(|ui| {
                ui.strong("Weights");
            });
            h.col(|ui| {
                ui.strong("Float");
            });
            h.col(|ui| header(ui, "Local SQNR", SortColumn::Local, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "Accum. SQNR", SortColumn::Accumulated, sort, asc, &mut clicked_sort));
            h.col(|ui| header(ui, "Sensitivity", SortColumn::Sensitivity, sort, asc, &mut clicked_sort));
        })
        .body(|body| {
            body.rows(tokens::ROW_HEIGHT, rows.len(), |mut row| {
                let i = rows[row.index()];
                let layer = &summary.layers[i];
                let name = layer.name.as_str();
                let selected = ctx.selection.selected.contains(name);
                row.set_selected(selected);
                let mut c = recipe.config_for(name);
                let overridden = recipe.layers.contains_key(name);
                let result = results.get(name);
                let mut changed = false;
                row.col(|ui| {
                    ui.weak(i.to_string());
                });
                row.col(|ui| {
                    let text = if overridden { egui::RichText::new(name).strong() } else { egui::RichText::new(name) };
                    if ui.add(egui::Button::selectable(selected, text).frame(false)).clicked() {
                        actions.push(Action::Select(i, SelectMode::from_modifiers(modifiers)));
                    }
                });
                row.col(|ui| {
                    ui.label(&layer.op_type);
                    if result.is_some_and(|r| r.saturates) {
                        ui.label(egui::RichText::new("int16!").small().color(tokens::OUTDATED)).on_hover_text(format!(
                            "On {} ONNX Runtime sums this layer's u8×s8 product pairs in int16 with saturation, and its \
                             weights can overflow it (the simulation computes it as the runtime does). 7-bit weights avoid it.",
                            recipe.runtime
                        ));
                    }
                });
                let enabled = !c.keep_float;
                row.col(|ui| changed |= bits_combo(ui, ("w", i), &mut c.weight.bits, enabled));
                // Weights only: the activation settings do not apply.
                let act = enabled && !recipe.weights_only;
                row.col(|ui| changed |= bits_combo(ui, ("a", i), &mut c.activation.bits, act));
                row.col(|ui| changed |= observer_combo(ui, ("o", i), &mut c.activation.observer, act));
                row.col(|ui| changed |= granularity_combo(ui, ("g", i), &mut c.weight.granularity, enabled));
                row.col(|ui| {
                    changed |= ui.checkbox(&mut c.keep_float, "").on_hover_text("Keep this layer in float").changed();
                });
                row.col(|ui| sqnr_cell(ui, result.and_then(|r| r.local.as_ref()).map(|m| m.sqnr_db), stale));
                row.col(|ui| sqnr_cell(ui, result.map(|r| r.accumulated.sqnr_db), stale));
                row.col(|ui| sensitivity.cell_ui(ui, name));
                if changed {
                    actions.push(Action::UpdateLayers(vec![(name.to_string(), Some(c))]));
                }
            });
        });
    if let Some(col) = clicked_sort {
        if col == state.sort {
            state.ascending = !state.ascending;
        } else {
            state.sort = col;
            state.ascending = true;
        }
    }
}
