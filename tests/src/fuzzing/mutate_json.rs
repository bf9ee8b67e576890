//! Mutations of recipe JSON made on the parsed tree: numbers, keys, types and spliced subtrees.

use serde_json::Value;

use super::Rng;

const RAW_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0.0",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "256",
    "65536",
    "1e-400",
    "3.4028236e38",
    "00012",
    "1.",
    "-",
    "1e",
    "0x10",
];

fn json_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() > 20_000 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                json_pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            // Long arrays (histograms) get a few sample positions, not all.
            let step = (a.len() / 16).max(1);
            for i in (0..a.len()).step_by(step) {
                json_pointers(&a[i], format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn random_leaf(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(1, 2)),
        2 => Value::String((*rng.pick(&["", "NaN", "inf", "per_group", "minmax", "entropy", "mlp", "x\u{0}y"])).into()),
        3 => Value::String("ü".repeat(1 + rng.below(3000))),
        4 => serde_json::json!([]),
        5 => serde_json::json!({}),
        6 => Value::from(*rng.pick(&[0i64, -1, 1, 2, 16, 17, 255, 256, i64::MIN, i64::MAX])),
        _ => Value::from(*rng.pick(&[0u64, 1, u64::MAX, 1 << 53])),
    }
}

const MARKER_NUM: &str = "\u{1}RAW\u{1}";
/// Duplicate-key markers: the first sorts before every key, the second after.
const MARKER_DUP: [&str; 2] = ["\u{2}DUP\u{2}", "~~DUP~~"];

/// Mutates `base` as a JSON tree (numbers to huge/negative/NaN-like texts, dropped and duplicated
/// keys, type changes, subtrees spliced from `donor`); raw text otherwise.
pub fn mutate_json_text(rng: &mut Rng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let Ok(mut doc) = serde_json::from_slice::<Value>(base) else { return base.to_vec() };
    let mut raw: Option<&str> = None;
    let mut dup: Option<(String, Value)> = None;
    for _ in 0..=rng.below(3) {
        let mut ptrs = Vec::new();
        json_pointers(&doc, String::new(), &mut ptrs);
        let ptr = rng.pick(&ptrs).clone();
        let Some(node) = doc.pointer_mut(&ptr) else { continue };
        match rng.below(9) {
            0 | 1 if node.is_number() || rng.chance(1, 4) => {
                raw = Some(*rng.pick(RAW_NUMBERS));
                *node = Value::String(MARKER_NUM.into());
            }
            2 => {
                if let Value::Object(m) = node
                    && !m.is_empty()
                {
                    let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                    m.remove(&k);
                } else if let Value::Array(a) = node
                    && !a.is_empty()
                {
                    a.remove(rng.below(a.len()));
                }
            }
            3 => {
                if let Value::Object(m) = node
                    && !m.is_empty()
                {
                    // A duplicate key, written after the original with another value.
                    let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
                    dup = Some((k, random_leaf(rng)));
                    m.insert((*rng.pick(&MARKER_DUP)).into(), Value::Null);
                } else if let Value::Array(a) = node
                    && !a.is_empty()
                {
                    let e = a[rng.below(a.len())].clone();
                    a.push(e);
                }
            }
            4 => {
                if let Value::Object(m) = node {
                    let k = *rng.pick(&[
                        "kind",
                        "bits",
                        "group_size",
                        "version",
                        "extra",
                        "num_bins",
                        "threshold",
                        "counts",
                    ]);
                    m.insert(k.into(), random_leaf(rng));
                } else {
                    *node = random_leaf(rng);
                }
            }
            5 => {
                if let Ok(d) = serde_json::from_slice::<Value>(donor) {
                    let mut dptrs = Vec::new();
                    json_pointers(&d, String::new(), &mut dptrs);
                    let p: &String = rng.pick(&dptrs);
                    if let Some(sub) = d.pointer(p) {
                        *node = sub.clone();
                    }
                }
            }
            6 => *node = Value::Array(vec![node.clone(); 1 + rng.below(3)]),
            _ => {
                *node = match node {
                    Value::Number(_) => {
                        Value::from(*rng.pick(&[-1.0, 0.0, 1e308, -1e308, 1e-300, 0.5, 100.000_01, 65536.0]))
                    }
                    _ => random_leaf(rng),
                };
            }
        }
    }
    let text = if rng.chance(1, 2) { serde_json::to_string(&doc) } else { serde_json::to_string_pretty(&doc) };
    let Ok(mut text) = text else { return base.to_vec() };
    if let Some(r) = raw {
        text = text.replace("\"\\u0001RAW\\u0001\"", r);
    }
    if let Some((k, v)) = dup {
        let pair = format!("{}:{}", Value::String(k), v);
        for marker in ["\"\\u0002DUP\\u0002\"", "\"~~DUP~~\""] {
            text = text.replace(&format!("{marker}:null"), &pair).replace(&format!("{marker}: null"), &pair);
        }
    }
    text.into_bytes()
}
