//! The graph layout's ordering and coordinates, on plain numbers: each edge longer than one layer
//! is split by dummy vertices (one per layer it passes), the vertices of each layer are ordered
//! by barycentre sweeps (down and up, the ordering with the fewest crossings kept), then given x
//! positions that pull each vertex towards its neighbours' mean without overlapping or changing
//! the order (each pass is the mean of a left-packed and a right-packed placement, both
//! feasible, hence feasible).

/// Height of a layer of boxes (the tallest box).
pub const ROW_HEIGHT: f32 = 34.0;
/// Vertical space between two layers of boxes.
pub const RANK_GAP: f32 = 36.0;
/// Least horizontal space between two boxes of one layer.
pub const NODE_GAP: f32 = 16.0;
/// Width a long edge takes where it passes a layer.
const DUMMY_WIDTH: f32 = 6.0;
/// Down-and-up barycentre sweeps.
const SWEEPS: usize = 6;
/// Rounds of coordinate straightening.
const STRAIGHTEN_ROUNDS: usize = 4;

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Centre of each vertex (graph coordinates).
    pub centers: Vec<[f32; 2]>,
    /// Per edge, the points where it passes the layers between its ends (top and bottom of each).
    pub dummy_points: Vec<Vec<[f32; 2]>>,
    /// Crossings between adjacent layers of the chosen ordering.
    pub crossings: usize,
    /// Crossings of the ordering before the sweeps.
    pub initial_crossings: usize,
}

/// The centre y of layer `rank`.
pub fn rank_y(rank: usize) -> f32 {
    rank as f32 * (ROW_HEIGHT + RANK_GAP) + ROW_HEIGHT / 2.0
}

/// The vertices with dummies: per vertex its layer, width and neighbours one layer up and down.
struct Layered {
    /// Vertices below this are boxes, the others dummies.
    real: usize,
    rank: Vec<usize>,
    width: Vec<f32>,
    up: Vec<Vec<usize>>,
    down: Vec<Vec<usize>>,
    /// Per edge, its dummy vertices top to bottom.
    chains: Vec<Vec<usize>>,
}

fn layered(ranks: &[usize], widths: &[f32], edges: &[(usize, usize)]) -> Layered {
    let mut l = Layered {
        real: ranks.len(),
        rank: ranks.to_vec(),
        width: widths.to_vec(),
        up: vec![Vec::new(); ranks.len()],
        down: vec![Vec::new(); ranks.len()],
        chains: Vec::with_capacity(edges.len()),
    };
    for &(a, b) in edges {
        let mut chain = Vec::new();
        let mut prev = a;
        for r in ranks[a] + 1..ranks[b] {
            let d = l.rank.len();
            l.rank.push(r);
            l.width.push(DUMMY_WIDTH);
            l.up.push(vec![prev]);
            l.down.push(Vec::new());
            l.down[prev].push(d);
            chain.push(d);
            prev = d;
        }
        l.down[prev].push(b);
        l.up[b].push(prev);
        l.chains.push(chain);
    }
    l
}

/// Crossings between adjacent layers: per pair of layers, inversions of the lower ends of the
/// edges sorted by their upper ends (a Fenwick tree over the lower layer's positions).
fn crossings(rows: &[Vec<usize>], pos: &[usize], down: &[Vec<usize>]) -> usize {
    let mut total = 0;
    let mut ends = Vec::new();
    for (r, row) in rows.iter().enumerate().take(rows.len().saturating_sub(1)) {
        ends.clear();
        for &u in row {
            let mut lower: Vec<usize> = down[u].iter().map(|&w| pos[w]).collect();
            lower.sort_unstable();
            ends.extend(lower);
        }
        let size = rows[r + 1].len();
        let mut tree = vec![0usize; size + 1];
        for (seen, &w) in ends.iter().enumerate() {
            // Edges seen so far whose lower end is at or left of w.
            let mut i = w + 1;
            let mut not_greater = 0;
            while i > 0 {
                not_greater += tree[i];
                i &= i - 1;
            }
            total += seen - not_greater;
            let mut i = w + 1;
            while i <= size {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

/// Orders each layer by the mean position of the vertices' neighbours in the layer above (down
/// sweep) or below (up sweep); vertices without such neighbours keep their place.
fn sweep(rows: &mut [Vec<usize>], pos: &mut [usize], neighbours: &[Vec<usize>], order: &[usize]) {
    let mut keyed: Vec<(f64, usize)> = Vec::new();
    for &r in order {
        keyed.clear();
        keyed.extend(rows[r].iter().map(|&v| {
            let n = &neighbours[v];
            let key = if n.is_empty() {
                pos[v] as f64
            } else {
                n.iter().map(|&u| pos[u] as f64).sum::<f64>() / n.len() as f64
            };
            (key, v)
        }));
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (i, &(_, v)) in keyed.iter().enumerate() {
            rows[r][i] = v;
            pos[v] = i;
        }
    }
}

/// Positions of one layer's vertices (`x`, in order and `sep[i]` apart from vertex i to i + 1)
/// moved towards `desired`, the highest priority first: each goes as close to its wish as the
/// vertices placed before allow, pushing the others aside (Sugiyama's priority method). Boxes
/// outrank long edges' dummies, so a box stays in line with its neighbours and the long edges
/// bend around it.
fn place_row(x: &mut [f32], desired: &[f32], sep: &[f32], priority: &[usize]) {
    let n = x.len();
    let mut by_priority: Vec<usize> = (0..n).collect();
    by_priority.sort_by_key(|&i| std::cmp::Reverse(priority[i]));
    let mut placed = vec![false; n];
    for i in by_priority {
        let (mut lo, mut acc) = (f32::NEG_INFINITY, 0.0);
        for j in (0..i).rev() {
            acc += sep[j];
            if placed[j] {
                lo = x[j] + acc;
                break;
            }
        }
        let (mut hi, mut acc) = (f32::INFINITY, 0.0);
        for j in i + 1..n {
            acc += sep[j - 1];
            if placed[j] {
                hi = x[j] - acc;
                break;
            }
        }
        x[i] = desired[i].clamp(lo, hi.max(lo));
        placed[i] = true;
        for k in i + 1..n {
            if placed[k] {
                break;
            }
            x[k] = x[k].max(x[k - 1] + sep[k - 1]);
        }
        for k in (0..i).rev() {
            if placed[k] {
                break;
            }
            x[k] = x[k].min(x[k + 1] - sep[k]);
        }
    }
}

/// Orders and places `ranks.len()` vertices (their layer and width given) joined by `edges`
/// (each going to a lower layer); `order` is a topological order, the initial ordering.
pub fn place(ranks: &[usize], widths: &[f32], order: &[usize], edges: &[(usize, usize)]) -> Placed {
    let l = layered(ranks, widths, edges);
    let n = l.rank.len();
    let rank_count = l.rank.iter().map(|r| r + 1).max().unwrap_or(0);
    // Initial ordering: topological order; a dummy follows its edge's upper end.
    let mut key = vec![0.0f64; n];
    for (i, &v) in order.iter().enumerate() {
        key[v] = i as f64;
    }
    for (e, chain) in l.chains.iter().enumerate() {
        for &d in chain {
            key[d] = key[edges[e].0] + 0.5;
        }
    }
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); rank_count];
    for v in 0..n {
        rows[l.rank[v]].push(v);
    }
    let mut pos = vec![0usize; n];
    for row in &mut rows {
        row.sort_by(|a, b| key[*a].total_cmp(&key[*b]));
        for (i, &v) in row.iter().enumerate() {
            pos[v] = i;
        }
    }
    let initial_crossings = crossings(&rows, &pos, &l.down);
    let (mut best, mut best_rows) = (initial_crossings, rows.clone());
    let down_order: Vec<usize> = (1..rank_count).collect();
    let up_order: Vec<usize> = (0..rank_count.saturating_sub(1)).rev().collect();
    for _ in 0..SWEEPS {
        if best == 0 {
            break;
        }
        sweep(&mut rows, &mut pos, &l.up, &down_order);
        sweep(&mut rows, &mut pos, &l.down, &up_order);
        let c = crossings(&rows, &pos, &l.down);
        if c < best {
            (best, best_rows) = (c, rows.clone());
        }
    }
    let rows = best_rows;
    let x = coordinates(&l, &rows);
    let centers: Vec<[f32; 2]> = (0..ranks.len()).map(|v| [x[v], rank_y(l.rank[v])]).collect();
    let dummy_points = l
        .chains
        .iter()
        .map(|chain| {
            chain
                .iter()
                .flat_map(|&d| {
                    let y = rank_y(l.rank[d]);
                    [[x[d], y - ROW_HEIGHT / 2.0], [x[d], y + ROW_HEIGHT / 2.0]]
                })
                .collect()
        })
        .collect();
    Placed { centers, dummy_points, crossings: best, initial_crossings }
}

/// x of every vertex: each layer packed and centred, then pulled towards its neighbours above
/// (down passes), below (up passes) and both (the last pass).
fn coordinates(l: &Layered, rows: &[Vec<usize>]) -> Vec<f32> {
    let mut x = vec![0.0f32; l.rank.len()];
    let seps: Vec<Vec<f32>> = rows
        .iter()
        .map(|row| row.windows(2).map(|w| f32::midpoint(l.width[w[0]], l.width[w[1]]) + NODE_GAP).collect())
        .collect();
    for (row, sep) in rows.iter().zip(&seps) {
        let total: f32 = sep.iter().sum();
        let mut at = -total / 2.0;
        for (i, &v) in row.iter().enumerate() {
            x[v] = at;
            at += sep.get(i).copied().unwrap_or(0.0);
        }
    }
    let real = l.real;
    let pass = |r: usize, x: &mut Vec<f32>, both: bool, use_up: bool| {
        let desired: Vec<f32> = rows[r]
            .iter()
            .map(|&v| {
                let (mut sum, mut weight) = (0.0, 0.0);
                let lists: &[&Vec<usize>] = if both {
                    &[&l.up[v], &l.down[v]]
                } else if use_up {
                    &[&l.up[v]]
                } else {
                    &[&l.down[v]]
                };
                // A box lines up with boxes only, a long edge's dummy with everything: the long
                // edges route around the boxes (else a residual stream drifts sideways block by
                // block, boxes and skip edges pushing each other).
                for &u in lists.iter().copied().flatten() {
                    let w = if u < real || v >= real { 1.0 } else { 0.0 };
                    sum += w * x[u];
                    weight += w;
                }
                if weight == 0.0 { x[v] } else { sum / weight }
            })
            .collect();
        let priority: Vec<usize> =
            rows[r].iter().map(|&v| if v < real { 1 + l.up[v].len() + l.down[v].len() } else { 0 }).collect();
        let mut row: Vec<f32> = rows[r].iter().map(|&v| x[v]).collect();
        place_row(&mut row, &desired, &seps[r], &priority);
        for (&v, p) in rows[r].iter().zip(row) {
            x[v] = p;
        }
    };
    for round in 0..STRAIGHTEN_ROUNDS {
        let last = round + 1 == STRAIGHTEN_ROUNDS;
        for r in 1..rows.len() {
            pass(r, &mut x, false, true);
        }
        for r in (0..rows.len().saturating_sub(1)).rev() {
            pass(r, &mut x, last, false);
        }
    }
    x
}
