// Fused cross-entropy over the last axis of contiguous logits [rows, V] with i32 targets, and the
// gather of one value per row (log-prob of given ids). Probabilities are never materialised: the
// forward keeps log-sum-exp per row, the backward recomputes softmax from it (llm.c's classifier).
// A target equal to `ignore` contributes 0 to the loss and gradient and is left out of the mean;
// a target outside [0, V) yields NaN for its row (the caller can check targets on the host).
const WG: u32 = 256u;

struct Params { rows: u32, v: u32, ignore: i32, mean: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<i32>;
@group(0) @binding(2) var<storage, read_write> row_loss: array<f32>; // [rows]
@group(0) @binding(3) var<storage, read_write> lse_out: array<f32>;  // [rows, 2]: max, log Σ exp(x - max)
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> sh: array<f32, WG>;

// Reduces sh[0..256) (already written) in three barriers: 256 → 32 partials of 8 → 1.
fn tree(lid: u32, is_max: bool) -> f32 {
  workgroupBarrier();
  if (lid < 32u) {
    var s = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) {
      let o = sh[lid * 8u + k];
      s = select(s + o, max(s, o), is_max);
    }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = sh[0];
    for (var k = 1u; k < 32u; k++) {
      let o = sh[k * 8u];
      s = select(s + o, max(s, o), is_max);
    }
    sh[0] = s;
  }
  workgroupBarrier();
  let r = sh[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn xent_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.v;
  // the running max starts at -inf (runtime bits: a constant infinity is a WGSL error), so a row
  // masked with the most negative f32 gives log(V), not -inf
  var m = bitcast<f32>(0xff800000u | (lid & 0u));
  for (var i = lid; i < p.v; i += WG) { m = max(m, x[base + i]); }
  sh[lid] = m;
  m = tree(lid, true);
  var s = 0.0;
  for (var i = lid; i < p.v; i += WG) { s += exp(x[base + i] - m); }
  sh[lid] = s;
  s = tree(lid, false);
  if (lid == 0u) {
    // max and log Σ kept apart: near -3.4e38, max + log Σ would lose log Σ
    let ls = log(s);
    let t = tgt[row];
    lse_out[2u * row] = m;
    lse_out[2u * row + 1u] = ls;
    if (t == p.ignore) {
      row_loss[row] = 0.0;
    } else if (t < 0 || u32(t) >= p.v) {
      row_loss[row] = sqrt(-1.0 - abs(ls)); // NaN: target out of range
    } else {
      row_loss[row] = ls - (x[base + u32(t)] - m);
    }
  }
}

// One workgroup: loss[0] = Σ row_loss / max(1, valid) (or Σ when not mean); loss[1] = the scale the
// backward multiplies by (1 / max(1, valid) or 1). Fixed order: deterministic.
@group(0) @binding(0) var<storage, read> rl: array<f32>;
@group(0) @binding(1) var<storage, read> tg: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<uniform> pf: Params;

@compute @workgroup_size(WG)
fn xent_finalize(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var c = 0.0;
  for (var i = lid; i < pf.rows; i += WG) {
    s += rl[i];
    c += select(1.0, 0.0, tg[i] == pf.ignore);
  }
  sh[lid] = s;
  s = tree(lid, false);
  sh[lid] = c;
  c = tree(lid, false);
  if (lid == 0u) {
    let scale = select(1.0, 1.0 / max(c, 1.0), pf.mean == 1u);
    loss[0] = s * scale;
    loss[1] = scale;
  }
}

// dx[r, v] = (softmax(x)[r, v] − [v == t_r]) · g · scale, 0 on ignored rows. One thread per element.
// PER_ROW = 1 reads g[r] (reduction "none"), else g[0].
override PER_ROW: u32 = 0u;
@group(0) @binding(0) var<storage, read> xb: array<f32>;
@group(0) @binding(1) var<storage, read> tb: array<i32>;
@group(0) @binding(2) var<storage, read> lseb: array<f32>;
@group(0) @binding(3) var<storage, read> gin: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>; // scale[1] from xent_finalize
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn xent_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pb.rows * pb.v) { return; }
  let row = i / pb.v;
  let col = i % pb.v;
  let t = tb[row];
  if (t == pb.ignore) { dx[i] = 0.0; return; }
  let g = select(gin[0] * scale[1], gin[row], PER_ROW == 1u);
  let pr = exp((xb[i] - lseb[2u * row]) - lseb[2u * row + 1u]);
  dx[i] = (pr - select(0.0, 1.0, i32(col) == t)) * g;
}

// Gather: out[r] = x[r, ids[r]] (NaN for an id outside [0, V)); backward: dx[r, v] = [v == ids[r]]·g[r].
@group(0) @binding(0) var<storage, read> gx: array<f32>;
@group(0) @binding(1) var<storage, read> gids: array<i32>;
@group(0) @binding(2) var<storage, read_write> gout: array<f32>;
@group(0) @binding(3) var<uniform> pg: Params;

@compute @workgroup_size(WG)
fn gather_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= pg.rows) { return; }
  let t = gids[r];
  if (t < 0 || u32(t) >= pg.v) { gout[r] = sqrt(-1.0 - abs(gx[r * pg.v])); return; }
  gout[r] = gx[r * pg.v + u32(t)];
}

@group(0) @binding(0) var<storage, read> gg: array<f32>;
@group(0) @binding(1) var<storage, read> gids2: array<i32>;
@group(0) @binding(2) var<storage, read_write> gdx: array<f32>;
@group(0) @binding(3) var<uniform> pg2: Params;

@compute @workgroup_size(WG)
fn gather_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pg2.rows * pg2.v) { return; }
  let row = i / pg2.v;
  gdx[i] = select(0.0, gg[row], i32(i % pg2.v) == gids2[row]);
}
