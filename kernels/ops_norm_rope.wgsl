// RMSNorm then RoPE over rows of D floats (a head's query or key: QK-norm then rotary embedding),
// forward and backward in one kernel each. Composed, the forward takes two dispatches (rmsNorm,
// rope) and the backward three (rope's, rmsNorm's fused dx and dw partials, and the fold of the
// partials, which the fused op keeps).
//
// Layout: a workgroup of WG threads holds WG / S rows at once, S lanes per row (S = the smallest
// power of two ≥ min(D/2, WG)); lane j owns the rotate-half pairs (j + m·S, j + m·S + D/2), m < P.
// A head is 16 to 128 floats, so one workgroup per row (ops_norm.wgsl) would leave most of its 256
// threads idle; here every lane holds a pair, the pair a rotation mixes, so the rotation needs no
// exchange between threads and only the row's sum of squares crosses lanes (a tree in shared
// memory within the row's S lanes, fixed order: deterministic).
//
// The angle is computed exactly as kernels/ops_rope.wgsl computes it, and the normalisation as
// ops_norm.wgsl's (x·r)·w, so fused and composed differ only in the order of the row's sum.
const WG: u32 = 256u;
const PMAX: u32 = 4u; // register arrays are declared this long; only the first P are used
override P: u32 = 1u; // pairs per lane: ceil(D/2 / WG) (D ≤ 2·WG·PMAX)

// rows: rows of D; t, t_div: position t = (row / t_div) % t ([.., T, H, D]: t_div = H; [.., H, T, D]:
// 1); s: lanes per row; chunk: rows per block of the backward (a multiple of WG / s)
struct Params {
  rows: u32, d: u32, t: u32, t_div: u32,
  offset: u32, base: f32, eps: f32, s: u32,
  chunk: u32,
}

// forward: x, weight, y, rstd, params; backward: x, weight, dy, rstd, params, dx, dw partials
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> brstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dwp: array<f32>;

// `sh` and row_sum come from row_sum_lanes.wgsl, prepended by the wrapper.

// (cos, sin) of pair j of a row: the expression of kernels/ops_rope.wgsl, term for term.
fn cos_sin(row: u32, j: u32) -> vec2f {
  let t = (row / p.t_div) % p.t;
  let inv_freq = pow(p.base, -2.0 * f32(j) / f32(p.d));
  let angle = f32(p.offset + t) * inv_freq;
  return vec2f(cos(angle), sin(angle));
}

// y = rope(x·r·w), r = 1/sqrt(mean(x²) + eps), saved per row.
@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let s = p.s;
  let lane = lid % s;
  let row = (wid.x + wid.y * nwg.x) * (WG / s) + lid / s;
  let live = row < p.rows; // no early return: the lanes of a row meet at barriers
  let half = p.d / 2u;
  let base = row * p.d;
  var x1: array<f32, PMAX>;
  var x2: array<f32, PMAX>;
  var ss = 0.0;
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    x1[m] = 0.0;
    x2[m] = 0.0;
    if (live && j < half) { x1[m] = x[base + j]; x2[m] = x[base + j + half]; }
    ss += x1[m] * x1[m] + x2[m] * x2[m];
  }
  let r = inverseSqrt(row_sum(ss, lid, s) / f32(p.d) + p.eps);
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    if (live && j < half) {
      let cs = cos_sin(row, j);
      let a = x1[m] * r * w[j];
      let b = x2[m] * r * w[j + half];
      y[base + j] = a * cs.x - b * cs.y;
      y[base + j + half] = b * cs.x + a * cs.y;
    }
  }
  if (live && lane == 0u) { rstd[row] = r; }
}

// One block of `chunk` rows, WG / s rows at a time: g = Rᵀ·dy (the rotation undone), then
// RMSNorm's backward dx = r·(g·w − x·r²·mean(g·w·x)), and the block's partial dw = Σ g·x·r, one
// row of [blocks, D] that the caller folds with a column sum.
@compute @workgroup_size(WG)
fn bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let blk = wid.x + wid.y * nwg.x;
  let r0 = blk * p.chunk;
  if (r0 >= p.rows) { return; } // the whole workgroup: the grid's spare blocks
  let r1 = min(p.rows, r0 + p.chunk);
  let s = p.s;
  let per = WG / s;
  let lane = lid % s;
  let sub = lid / s;
  let half = p.d / 2u;
  var w1: array<f32, PMAX>;
  var w2: array<f32, PMAX>;
  var a1: array<f32, PMAX>; // dw of columns j and j + D/2
  var a2: array<f32, PMAX>;
  var g1: array<f32, PMAX>;
  var g2: array<f32, PMAX>;
  var x1: array<f32, PMAX>;
  var x2: array<f32, PMAX>;
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    w1[m] = 0.0;
    w2[m] = 0.0;
    a1[m] = 0.0;
    a2[m] = 0.0;
    if (j < half) { w1[m] = w[j]; w2[m] = w[j + half]; }
  }
  for (var r = r0; r < r1; r += per) {
    let row = r + sub;
    let live = row < r1;
    let base = row * p.d;
    var rs = 0.0;
    if (live) { rs = brstd[row]; }
    var d = 0.0;
    for (var m = 0u; m < P; m++) {
      let j = lane + m * s;
      g1[m] = 0.0;
      g2[m] = 0.0;
      x1[m] = 0.0;
      x2[m] = 0.0;
      if (live && j < half) {
        let cs = cos_sin(row, j);
        let d1 = dy[base + j];
        let d2 = dy[base + j + half];
        g1[m] = d1 * cs.x + d2 * cs.y;
        g2[m] = d2 * cs.x - d1 * cs.y;
        x1[m] = x[base + j];
        x2[m] = x[base + j + half];
      }
      d += g1[m] * w1[m] * x1[m] + g2[m] * w2[m] * x2[m];
    }
    let k = row_sum(d, lid, s) * rs * rs / f32(p.d);
    for (var m = 0u; m < P; m++) {
      let j = lane + m * s;
      if (live && j < half) {
        dx[base + j] = rs * (g1[m] * w1[m] - x1[m] * k);
        dx[base + j + half] = rs * (g2[m] * w2[m] - x2[m] * k);
        a1[m] += g1[m] * x1[m] * rs;
        a2[m] += g2[m] * x2[m] * rs;
      }
    }
  }
  // the per rows' partials of each column, summed in row order by the first row's lanes
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    sh[lid] = vec2f(a1[m], a2[m]);
    workgroupBarrier();
    if (sub == 0u && j < half) {
      var t = sh[lane];
      for (var q = 1u; q < per; q++) { t += sh[q * s + lane]; }
      dwp[blk * p.d + j] = t.x;
      dwp[blk * p.d + j + half] = t.y;
    }
    workgroupBarrier();
  }
}
