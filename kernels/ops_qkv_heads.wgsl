// The joined q/k/v projection's output to attention-ready heads, forward and backward in one
// kernel each: the split of [tokens, (Hq + 2·Hkv)·D] into q [tokens, Hq, D], k and v
// [tokens, Hkv, D], each q and k head through RMSNorm (QK-norm, when that section has a weight)
// and RoPE, v copied. With HAS_BIAS the projection's bias [(Hq + 2·Hkv)·D] (Qwen2's q/k/v biases)
// is added to each head row as it is read, before the norm and the rotation (as transformers
// does): the bias costs no dispatch of its own. Composed (split3, then rmsNormRope for q and for k) the forward takes three
// dispatches and the backward five (two norm_rope backwards, two column sums, the join).
//
// The joined tensor read as [tokens · (Hq + 2·Hkv), D] is a list of head rows: row r is token
// r / H (H = Hq + 2·Hkv), head h = r % H, a query head for h < Hq, a key head for h < Hq + Hkv,
// else a value head. Lanes as kernels/ops_norm_rope.wgsl: S lanes per row (a power of two ≥
// min(D/2, WG)), lane j owns the rotate-half pairs (j + m·S, j + m·S + D/2), m < P, and only the
// row's sum of squares crosses lanes (a fixed-order tree: deterministic). The angle and the
// normalisation are ops_norm_rope.wgsl's expressions term for term, so the two agree bit for bit
// in the forward.
const WG: u32 = 256u;
const PMAX: u32 = 4u; // register arrays are declared this long; only the first P are used
override P: u32 = 1u; // pairs per lane: ceil(D/2 / WG) (D ≤ 2·WG·PMAX)

// Flags: a section with its norm weight is RMS-normalised (else RoPE only); a gradient present
// is read (else zero); rstd is written only when a backward will read it.
const NORM_Q: u32 = 1u;
const NORM_K: u32 = 2u;
const HAS_DQ: u32 = 4u;
const HAS_DK: u32 = 8u;
const HAS_DV: u32 = 16u;
const SAVE_RSTD: u32 = 32u; // the forward keeps 1/rms of each normalised row for the backward
const HAS_BIAS: u32 = 64u; // x + bias is the row (read by both passes; the bias's gradient is dx's column sums)

// tokens; hq, hkv heads; d head size; t, offset: token i sits at position offset + i % t; s lanes
// per row; flags above. Backward: chunk_q, chunk_k rows of dq / dk per block; nb blocks of each
// (the section with fewer leaves its spare blocks' partials zero); nv_groups of the v copy; the
// weight partials go to dwp[blk·pstride + j] (q) and dwp[kbase + blk·pstride + j] (k), and the
// q blocks also zero columns d..gap_end of their row (the gap between q's and k's columns when
// both are one [nb, pstride] matrix that lines up with the two weights' gradients).
struct Params {
  tokens: u32, hq: u32, hkv: u32, d: u32,
  t: u32, offset: u32, base: f32, eps: f32,
  s: u32, flags: u32, chunk_q: u32, chunk_k: u32,
  nb: u32, pstride: u32, kbase: u32, gap_end: u32,
}

// forward: x (joined), q-norm weight, k-norm weight, params, q, k, v, rstd, bias
// backward: x, q-norm weight, k-norm weight, params, dq, dk, dv, rstd, dx (joined), dw partials,
// bias (a stand-in without HAS_BIAS)
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wq: array<f32>;
@group(0) @binding(2) var<storage, read> wk: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> k: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(8) var<storage, read> fbias: array<f32>;
@group(0) @binding(4) var<storage, read> dq: array<f32>;
@group(0) @binding(5) var<storage, read> dk: array<f32>;
@group(0) @binding(6) var<storage, read> dv: array<f32>;
@group(0) @binding(7) var<storage, read> brstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> dwp: array<f32>;
@group(0) @binding(10) var<storage, read> bbias: array<f32>;

// `sh` and row_sum come from row_sum_lanes.wgsl, prepended by the wrapper.

// (cos, sin) of pair j of a head row of `token`: kernels/ops_rope.wgsl's expression.
fn cos_sin(token: u32, j: u32) -> vec2f {
  let t = token % p.t;
  let inv_freq = pow(p.base, -2.0 * f32(j) / f32(p.d));
  let angle = f32(p.offset + t) * inv_freq;
  return vec2f(cos(angle), sin(angle));
}

fn wgid(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

// q, k = rope(x·r·w) (r = 1/sqrt(mean(x²) + eps), saved per q and k row, or r = w = 1 without the
// section's norm); v = x; x is the row plus its bias with HAS_BIAS.
@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let s = p.s;
  let lane = lid % s;
  let H = p.hq + 2u * p.hkv;
  let row = wgid(wid, nwg) * (WG / s) + lid / s;
  let live = row < p.tokens * H; // no early return: the lanes of a row meet at barriers
  let token = row / H;
  let h = row % H;
  let half = p.d / 2u;
  let src = row * p.d;
  var x1: array<f32, PMAX>;
  var x2: array<f32, PMAX>;
  var ss = 0.0;
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    x1[m] = 0.0;
    x2[m] = 0.0;
    if (live && j < half) {
      x1[m] = x[src + j];
      x2[m] = x[src + j + half];
      if ((p.flags & HAS_BIAS) != 0u) { x1[m] += fbias[h * p.d + j]; x2[m] += fbias[h * p.d + j + half]; }
    }
    ss += x1[m] * x1[m] + x2[m] * x2[m];
  }
  let r = inverseSqrt(row_sum(ss, lid, s) / f32(p.d) + p.eps);
  if (!live) { return; } // past the last barrier
  if (h >= p.hq + p.hkv) { // a value head: copied
    let dst = (token * p.hkv + h - p.hq - p.hkv) * p.d;
    for (var m = 0u; m < P; m++) {
      let j = lane + m * s;
      if (j < half) { v[dst + j] = x1[m]; v[dst + j + half] = x2[m]; }
    }
    return;
  }
  let is_q = h < p.hq;
  let normed = (is_q && (p.flags & NORM_Q) != 0u) || (!is_q && (p.flags & NORM_K) != 0u);
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    if (j < half) {
      let cs = cos_sin(token, j);
      var a = x1[m];
      var b = x2[m];
      if (normed) {
        if (is_q) { a = a * r * wq[j]; b = b * r * wq[j + half]; }
        else { a = a * r * wk[j]; b = b * r * wk[j + half]; }
      }
      let ya = a * cs.x - b * cs.y;
      let yb = b * cs.x + a * cs.y;
      if (is_q) {
        let dst = (token * p.hq + h) * p.d;
        q[dst + j] = ya;
        q[dst + j + half] = yb;
      } else {
        let dst = (token * p.hkv + h - p.hq) * p.d;
        k[dst + j] = ya;
        k[dst + j + half] = yb;
      }
    }
  }
  if (normed && (p.flags & SAVE_RSTD) != 0u && lane == 0u) { rstd[token * (p.hq + p.hkv) + h] = r; }
}

// Workgroups [0, nb): blocks of chunk_q query rows; [nb, 2·nb): blocks of chunk_k key rows;
// the rest: the value columns, one element a thread. A q or k block: g = Rᵀ·dy (the rotation
// undone), then (with the norm) RMSNorm's backward dx = r·(g·w − x·r²·mean(g·w·x)) and the block's
// partial dw = Σ g·x·r; without it dx = g. A missing gradient reads as zero.
@compute @workgroup_size(WG)
fn bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let g = wgid(wid, nwg);
  let H = p.hq + 2u * p.hkv;
  let half = p.d / 2u;
  if (g >= 2u * p.nb) { // value columns
    let i = (g - 2u * p.nb) * WG + lid;
    if (i >= p.tokens * p.hkv * p.d) { return; }
    let row = i / p.d;
    let token = row / p.hkv;
    let c = i - row * p.d;
    var val = 0.0;
    if ((p.flags & HAS_DV) != 0u) { val = dv[i]; }
    dx[(token * H + p.hq + p.hkv + row % p.hkv) * p.d + c] = val;
    return;
  }
  let is_q = g < p.nb; // the whole workgroup: uniform
  var blk = g;
  var heads = p.hq;
  var chunk = p.chunk_q;
  var first = 0u; // the section's first head in a token's joined row
  var wbase = 0u;
  var normed = (p.flags & NORM_Q) != 0u;
  var has_g = (p.flags & HAS_DQ) != 0u;
  if (!is_q) {
    blk = g - p.nb;
    heads = p.hkv;
    chunk = p.chunk_k;
    first = p.hq;
    wbase = p.kbase;
    normed = (p.flags & NORM_K) != 0u;
    has_g = (p.flags & HAS_DK) != 0u;
  }
  let rows = p.tokens * heads;
  let r0 = blk * chunk;
  let r1 = min(rows, r0 + chunk);
  let s = p.s;
  let per = WG / s;
  let lane = lid % s;
  let sub = lid / s;
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
    w1[m] = 1.0;
    w2[m] = 1.0;
    a1[m] = 0.0;
    a2[m] = 0.0;
    if (normed && j < half) {
      if (is_q) { w1[m] = wq[j]; w2[m] = wq[j + half]; }
      else { w1[m] = wk[j]; w2[m] = wk[j + half]; }
    }
  }
  for (var r = r0; r < r1; r += per) { // r0 ≥ r1 for a spare block: no trip
    let row = r + sub; // in dq / dk: [tokens, heads, D] rows
    let live = row < r1;
    let token = row / heads;
    let jrow = token * H + first + row % heads; // in x / dx
    let base = jrow * p.d;
    var rs = 1.0;
    if (live && normed) { rs = brstd[token * (p.hq + p.hkv) + first + row % heads]; }
    var d = 0.0;
    for (var m = 0u; m < P; m++) {
      let j = lane + m * s;
      g1[m] = 0.0;
      g2[m] = 0.0;
      x1[m] = 0.0;
      x2[m] = 0.0;
      if (live && j < half) {
        var d1 = 0.0;
        var d2 = 0.0;
        if (has_g && is_q) { d1 = dq[row * p.d + j]; d2 = dq[row * p.d + j + half]; }
        if (has_g && !is_q) { d1 = dk[row * p.d + j]; d2 = dk[row * p.d + j + half]; }
        let cs = cos_sin(token, j);
        g1[m] = d1 * cs.x + d2 * cs.y;
        g2[m] = d2 * cs.x - d1 * cs.y;
        if (normed) {
          x1[m] = x[base + j];
          x2[m] = x[base + j + half];
          if ((p.flags & HAS_BIAS) != 0u) {
            let hb = (first + row % heads) * p.d;
            x1[m] += bbias[hb + j];
            x2[m] += bbias[hb + j + half];
          }
        }
      }
      d += g1[m] * w1[m] * x1[m] + g2[m] * w2[m] * x2[m];
    }
    let kk = row_sum(d, lid, s) * rs * rs / f32(p.d); // 0 without the norm (x read as 0)
    for (var m = 0u; m < P; m++) {
      let j = lane + m * s;
      if (live && j < half) {
        dx[base + j] = rs * (g1[m] * w1[m] - x1[m] * kk);
        dx[base + j + half] = rs * (g2[m] * w2[m] - x2[m] * kk);
        a1[m] += g1[m] * x1[m] * rs;
        a2[m] += g2[m] * x2[m] * rs;
      }
    }
  }
  if (!normed) { return; } // the whole workgroup: no partials
  // the per rows' partials of each column, summed in row order by the first row's lanes
  let prow = wbase + blk * p.pstride;
  for (var m = 0u; m < P; m++) {
    let j = lane + m * s;
    sh[lid] = vec2f(a1[m], a2[m]);
    workgroupBarrier();
    if (sub == 0u && j < half) {
      var t = sh[lane];
      for (var e = 1u; e < per; e++) { t += sh[e * s + lane]; }
      dwp[prow + j] = t.x;
      dwp[prow + j + half] = t.y;
    }
    workgroupBarrier();
  }
  if (is_q) {
    for (var c = p.d + lid; c < p.gap_end; c += WG) { dwp[prow + c] = 0.0; }
  }
}
