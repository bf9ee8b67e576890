//! Headless UI tests of the graph view on the MobileNet-style sample: the tab draws the model, a
//! click on a layer's box selects it everywhere, a selection made elsewhere is followed, the
//! colours are the evaluation's, the Q/DQ markers are the placement's, kept-float layers and nodes
//! show as excluded, and the hover gives a box's figures.

use egui::Modifiers;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::actions::{Action, SelectMode};
use super::app::{CentralView, WorkbenchApp};
use super::graph_layout::{GraphLayout, NodeKind};
use super::graph_style::{ColorBy, Figures, MarkerPlace};
use super::tests::{harness, pointer, sample, settled, wait_until};
use super::tokens;

/// MobileNet opened, calibrated and evaluated, with the Graph tab shown.
fn graph_harness() -> Harness<'static, WorkbenchApp> {
    let mut h = harness();
    h.state_mut().push_action(Action::OpenModel(sample("mobilenet")));
    wait_until(&mut h, "mobilenet evaluated", settled);
    h.get_by_label("Graph").click();
    h.step();
    h.step();
    assert_eq!(h.state().views.central, CentralView::Graph);
    h
}

/// The screen centre of layer `layer`'s box as last drawn.
fn layer_center(h: &Harness<'_, WorkbenchApp>, layer: usize) -> egui::Pos2 {
    let graph = &h.state().views.graph;
    let layout = graph.layout().expect("laid out");
    let node = &layout.nodes[layout.layer_nodes[layer].expect("layer box")];
    graph.to_screen(node.center).expect("drawn")
}

fn layout<'a>(h: &'a Harness<'_, WorkbenchApp>) -> &'a GraphLayout {
    h.state().views.graph.layout().expect("laid out")
}

#[test]
fn the_graph_tab_draws_the_model_and_a_click_selects_the_layer_everywhere() {
    let mut h = graph_harness();
    let summary = h.state().session.summary.clone().expect("model");
    let boxes = layout(&h).nodes.len();
    // input, output, 10 layers, 8 Clips, and the last Clip → pool → flatten chain.
    assert_eq!(boxes, 2 + 10 + 8 + 1, "boxes: {:?}", layout(&h).nodes.iter().map(|n| &n.title).collect::<Vec<_>>());
    h.get_by_label_contains("21 boxes, 21 ONNX nodes");
    h.get_by_label_contains("Q/DQ of the ort placement: 13 quantized tensors, 13 markers");

    // Click the box of layer 3: it becomes the selection and the detail panel's layer.
    let canvas = h.state().views.graph.canvas().expect("canvas");
    let at = layer_center(&h, 3);
    assert!(canvas.contains(at), "fitted: every box is on the canvas");
    pointer(&mut h, at, None);
    pointer(&mut h, at, Some(true));
    pointer(&mut h, at, Some(false));
    h.step();
    let name = summary.layers[3].name.clone();
    let selection = &h.state().selection;
    assert_eq!(selection.selected.iter().collect::<Vec<_>>(), [&name]);
    assert_eq!(selection.focus, Some(3));
    h.get_by_label(&name); // the detail panel's heading
    assert_eq!(layer_center(&h, 3), at, "the view does not jump to a box the user clicked");

    // A click on empty canvas selects nothing new.
    pointer(&mut h, canvas.left_top() + egui::vec2(5.0, 5.0), Some(true));
    pointer(&mut h, canvas.left_top() + egui::vec2(5.0, 5.0), Some(false));
    assert_eq!(h.state().selection.focus, Some(3));

    // A selection made elsewhere (the table, a chart): the view centres on it.
    h.state_mut().push_action(Action::Select(8, SelectMode::Replace));
    h.step();
    h.step();
    let centre = layer_center(&h, 8);
    let canvas = h.state().views.graph.canvas().expect("canvas");
    assert!(centre.distance(canvas.center()) < 1.0, "{centre:?} vs {:?}", canvas.center());
    // Zooming with the wheel keeps the point under the pointer in place.
    let before = layer_center(&h, 8);
    let under = before + egui::vec2(0.0, 40.0);
    pointer(&mut h, under, None);
    h.input_mut().events.push(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 120.0),
        modifiers: Modifiers::NONE,
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
    });
    for _ in 0..30 {
        h.step();
    }
    let after = layer_center(&h, 8);
    let (d0, d1) = (before.distance(under), after.distance(under));
    assert!(d1 > d0 * 1.2, "zoomed in around the pointer: {d0} -> {d1}");
    assert!((after.x - under.x).abs() < 1.0, "the box stays in line with the pointer");
}

#[test]
fn colours_markers_and_hover_show_the_evaluation_and_the_placement() {
    let mut h = graph_harness();
    let app = h.state_mut();
    let summary = app.session.summary.clone().expect("model");
    let (_, evaluation) = app.session.evaluation.clone().expect("evaluated");
    let (ctx, views) = app.split();
    let layout = views.graph.layout().expect("laid out");
    let figures = Figures::new(&ctx, &summary, ColorBy::LocalSqnr);
    for r in &evaluation.layers {
        let i = summary.layers.iter().position(|l| l.name == r.name).expect("layer");
        let node = &layout.nodes[layout.layer_nodes[i].expect("box")];
        let local = r.local.as_ref().expect("local").sqnr_db;
        assert_eq!(figures.fill(ColorBy::LocalSqnr, node), tokens::sqnr_color(local), "{}", r.name);
        assert_eq!(figures.fill(ColorBy::AccumulatedSqnr, node), tokens::sqnr_color(r.accumulated.sqnr_db));
        assert_eq!(figures.fill(ColorBy::Sensitivity, node), tokens::GRAPH_NO_VALUE, "no sensitivity run yet");
        assert_eq!(figures.fill(ColorBy::Quantization, node), tokens::GRAPH_QUANTIZED);
        let hover = figures.hover_text(node);
        assert!(hover.contains(&format!("local SQNR: {local:.1} dB")), "{hover}");
        assert!(hover.contains("weights 8, activations 8"), "{hover}");
    }
    // The accumulated error grows along the network: the last pointwise conv is yellow (33.8 dB).
    let colours: Vec<_> = layout.nodes.iter().map(|n| figures.fill(ColorBy::AccumulatedSqnr, n)).collect();
    assert!(colours.contains(&tokens::GOOD) && colours.contains(&tokens::FAIR), "both classes drawn");
    let terminal = layout.nodes.iter().find(|n| n.kind == NodeKind::Input).expect("input box");
    assert_eq!(figures.fill(ColorBy::LocalSqnr, terminal), tokens::GRAPH_TERMINAL);
    assert!(figures.hover_text(terminal).contains("quantized tensors:\n  input (8 bits)"));

    // One marker per quantized tensor's edge into a reader (the input, the Clips' outputs, the
    // flattened features), or into the output for the quantized logits, which no node reads; the
    // last Clip's and the pool's outputs run inside the Clip → pool → flatten box: marked on it.
    let markers = views.graph.markers();
    assert_eq!(evaluation.quantized.len(), 13);
    assert_eq!(markers.len(), 13);
    let chain = layout.nodes.iter().position(|n| n.members.len() == 3).expect("the collapsed chain");
    for m in markers {
        let q = &evaluation.quantized[m.tensor];
        assert_eq!(m.bits, q.bits);
        match m.place {
            MarkerPlace::Node(n) => {
                assert_eq!(n, chain, "{}", q.tensor);
                assert!(["block4_pw_relu6_out", "gap_out"].contains(&q.tensor.as_str()), "{}", q.tensor);
            }
            MarkerPlace::Edge(e) => {
                let edge = &layout.edges[e];
                assert!(edge.tensors.contains(&q.tensor), "{} marked on an edge carrying {:?}", q.tensor, edge.tensors);
                let to = &layout.nodes[edge.to];
                let reads = to.members.iter().any(|&n| q.readers.contains(&summary.nodes[n].name));
                assert!(reads || (q.readers.is_empty() && to.kind == NodeKind::Output), "{}", q.tensor);
            }
        }
    }
    let marked: std::collections::BTreeSet<usize> = markers.iter().map(|m| m.tensor).collect();
    assert_eq!(marked.len(), 13, "every quantized tensor is marked once");

    // Hovering a box shows its figures.
    let at = layer_center(&h, 2);
    pointer(&mut h, at, None);
    for _ in 0..60 {
        h.step();
        if h.query_by_label_contains("accumulated SQNR:").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let name = &summary.layers[2].name;
    h.get_by_label_contains(&format!("{name} (Conv)\nweights 8, activations 8\nlocal SQNR: "));
}

#[test]
fn kept_float_layers_and_nodes_show_as_excluded() {
    let mut h = graph_harness();
    h.state_mut().views.graph.color_by = ColorBy::Quantization;
    h.step();
    h.get_by_label("kept float (recipe)");
    let summary = h.state().session.summary.clone().expect("model");
    let recipe = h.state().session.recipe.clone().expect("recipe");
    let layer = summary.layers[4].name.clone();
    let clip = summary.nodes.iter().find(|n| n.op_type == "Clip").expect("a Clip").name.clone();
    let mut config = recipe.config_for(&layer);
    config.keep_float = true;
    h.state_mut().push_action(Action::UpdateLayers(vec![(layer.clone(), Some(config))]));
    h.state_mut().push_action(Action::SetFloatNodes([clip.clone()].into()));
    h.step();
    let revision = h.state().session.revision;
    wait_until(&mut h, "re-evaluation", |a| settled(a) && a.session.revision >= revision);
    let app = h.state_mut();
    let (ctx, views) = app.split();
    let layout = views.graph.layout().expect("laid out");
    let figures = Figures::new(&ctx, &summary, ColorBy::Quantization);
    let fill_of = |name: &str| {
        let node = layout.nodes.iter().find(|n| n.members.iter().any(|&m| summary.nodes[m].name == name)).expect(name);
        figures.fill(ColorBy::Quantization, node)
    };
    assert_eq!(fill_of(&layer), tokens::GRAPH_EXCLUDED);
    assert_eq!(fill_of(&clip), tokens::GRAPH_EXCLUDED);
    assert_eq!(fill_of(&summary.layers[5].name), tokens::GRAPH_QUANTIZED);
    // The pool → flatten chain reads quantized tensors: quantized, not excluded.
    assert_eq!(fill_of("flatten"), tokens::GRAPH_QUANTIZED);
}

/// "Fit width" shows a deep model from its top at a readable zoom (a whole fit shows it tiny).
#[test]
fn fit_width_shows_the_top_of_the_graph_across_the_canvas() {
    let mut h = graph_harness();
    h.get_by_label("Fit width").click();
    h.step();
    h.step();
    let graph = &h.state().views.graph;
    let canvas = graph.canvas().expect("canvas");
    let [a, b, c, _] = layout(&h).bounds;
    let (left, right) = (graph.to_screen([a, b]).expect("drawn"), graph.to_screen([c, b]).expect("drawn"));
    assert!((left.y - canvas.top() - 12.0).abs() < 1.0, "the top at the canvas top: {left:?} in {canvas:?}");
    assert!(left.x >= canvas.left() - 0.5 && right.x <= canvas.right() + 0.5, "{left:?}..{right:?} in {canvas:?}");
    let width = right.x - left.x;
    assert!(width > 0.9 * canvas.width() || (width - (c - a)).abs() < 1.0, "fills the width, or 1:1: {width}");
}
