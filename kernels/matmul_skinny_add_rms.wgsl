// A prologue of matmul_skinny.wgsl: A read through a residual add and an RMSNorm. The stored A is
// the residual stream x [M, K]; with RESIDUAL the branch output r [M, K] is added first (h = x + r,
// else h = x), and the product is
//
//   C[m, n] = rstd[m] · Σ_k (h[m, k] · g[k]) · B[k, n],   rstd[m] = 1 / sqrt(mean_k h[m, k]² + eps),
//
// i.e. rmsNorm(h, g, eps) · B with the row scale taken out of the sum. So a decode step's norm and
// the projection that reads it are one dispatch, with no [M, K] normalised intermediate.
//
// Why this shape: every invocation loads h (x + r) for its 8 rows over its k slices anyway, so it
// also sums h² over them (addRmsStep, before scaling h by g), the fixed tree sums those partial
// sums over the KS slices exactly as it sums the products (addRmsScale, a second tree in the same
// workgroup memory after the first), and the s == 0 invocations scale their 8 row accumulators by
// rstd before storing. One pass over A and B, no barrier in the k loop. Each (column group g, row
// group r) pair sums over all k of its rows, so every column group computes the full sum (the same
// sum CG times over: cheaper than sharing it). This needs all of K in one workgroup: the planner
// never splits K across workgroups for this prologue (src/tensor/matmul/skinny.ts).
//
// The sum h is written once, to its own buffer (never in place: other workgroups still read x):
// by workgroup 0's column group 0, which loads every element of h exactly once.
//
// src/tensor/matmul/kernels.ts appends this to the vec4 or scalar prelude with the prelude's
// `load4A` renamed `load4X` (the raw loads of x), and replaces the body's two hook comments with
// the calls of addRmsStep and addRmsScale. r and g are read with guarded scalar loads in either
// prelude (x keeps the prelude's loads).
//
// params.batchBase (unused by the skinny body) holds eps's f32 bits.
override RESIDUAL: bool = true;

@group(0) @binding(4) var<storage, read> addRmsR: array<f32>; // r (bound to x without RESIDUAL)
@group(0) @binding(5) var<storage, read> addRmsGain: array<f32>; // g [K]
@group(0) @binding(6) var<storage, read_write> addRmsSum: array<f32>; // x + r (unwritten without RESIDUAL)

// Per invocation: Σ h² over its k slices for rows 0..3 and 4..7 of its row group.
var<private> addRmsLo: vec4<f32>;
var<private> addRmsHi: vec4<f32>;

fn load4R(i: u32, valid: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (valid > 0u) { v.x = addRmsR[i]; }
  if (valid > 1u) { v.y = addRmsR[i + 1u]; }
  if (valid > 2u) { v.z = addRmsR[i + 2u]; }
  if (valid > 3u) { v.w = addRmsR[i + 3u]; }
  return v;
}

// h = x (+ r) for elements i .. i + valid − 1 of A, zeros after them (scaled by g in addRmsStep).
fn load4A(i: u32, valid: u32) -> vec4<f32> {
  if (valid == 0u) { return vec4<f32>(0.0); }
  let x = load4X(i, valid);
  if (RESIDUAL) { return x + load4R(i, valid); }
  return x;
}

// g[k .. k+3], zeros from kHi on.
fn addRmsGain4(k: u32, kHi: u32) -> vec4<f32> {
  let valid = span(k, kHi);
  var v = vec4<f32>(0.0);
  if (valid > 0u) { v.x = addRmsGain[k]; }
  if (valid > 1u) { v.y = addRmsGain[k + 1u]; }
  if (valid > 2u) { v.z = addRmsGain[k + 2u]; }
  if (valid > 3u) { v.w = addRmsGain[k + 3u]; }
  return v;
}

// Writes row j's 4-run at k of h (the rows and k the kernel loaded: none past M or kHi).
fn addRmsWrite(row: u32, k: u32, kHi: u32, v: vec4<f32>) {
  let valid = span(k, kHi);
  let at = row * params.K + k;
  for (var e = 0u; e < valid; e++) { addRmsSum[at + e] = v[e]; }
}

// The k loop's hook, once per step on the step's operands: Σ h² for the 8 rows, h written out by
// the one writer, then A = h · g.
fn addRmsStep(st: ptr<function, Step>, m: u32, rows: u32, k: u32, kHi: u32, writer: bool) {
  addRmsLo += vec4<f32>(dot((*st).a0, (*st).a0), dot((*st).a1, (*st).a1),
                        dot((*st).a2, (*st).a2), dot((*st).a3, (*st).a3));
  addRmsHi += vec4<f32>(dot((*st).a4, (*st).a4), dot((*st).a5, (*st).a5),
                        dot((*st).a6, (*st).a6), dot((*st).a7, (*st).a7));
  if (RESIDUAL && writer) {
    if (rows > 0u) { addRmsWrite(m, k, kHi, (*st).a0); }
    if (rows > 1u) { addRmsWrite(m + 1u, k, kHi, (*st).a1); }
    if (rows > 2u) { addRmsWrite(m + 2u, k, kHi, (*st).a2); }
    if (rows > 3u) { addRmsWrite(m + 3u, k, kHi, (*st).a3); }
    if (rows > 4u) { addRmsWrite(m + 4u, k, kHi, (*st).a4); }
    if (rows > 5u) { addRmsWrite(m + 5u, k, kHi, (*st).a5); }
    if (rows > 6u) { addRmsWrite(m + 6u, k, kHi, (*st).a6); }
    if (rows > 7u) { addRmsWrite(m + 7u, k, kHi, (*st).a7); }
  }
  let gk = addRmsGain4(k, kHi);
  (*st).a0 *= gk; (*st).a1 *= gk; (*st).a2 *= gk; (*st).a3 *= gk;
  (*st).a4 *= gk; (*st).a5 *= gk; (*st).a6 *= gk; (*st).a7 *= gk;
}

// After the body's tree (its last barrier passed, so `red` is free): the same fixed tree over the
// KS slices for the sums of squares, then every row's accumulator times its rstd (only the s == 0
// invocations' are stored). Called by every invocation: it has barriers.
fn addRmsScale(s: u32, g: u32, r: u32,
               acc0: ptr<function, vec4<f32>>, acc1: ptr<function, vec4<f32>>,
               acc2: ptr<function, vec4<f32>>, acc3: ptr<function, vec4<f32>>,
               acc4: ptr<function, vec4<f32>>, acc5: ptr<function, vec4<f32>>,
               acc6: ptr<function, vec4<f32>>, acc7: ptr<function, vec4<f32>>) {
  var lo = addRmsLo;
  var hi = addRmsHi;
  for (var h = KS / 2u; h > 0u; h = h / 2u) {
    let slot = h * (g + CG * r);
    if (s >= h && s < 2u * h) {
      let w = slot + s - h;
      red[w] = lo; red[128u + w] = hi;
    }
    workgroupBarrier();
    if (s < h) {
      let w = slot + s;
      lo += red[w]; hi += red[128u + w];
    }
    workgroupBarrier();
  }
  // rms_fwd4's expression: inverseSqrt(Σ h² / K + eps).
  let eps = bitcast<f32>(params.batchBase);
  let k = f32(params.K);
  let rlo = inverseSqrt(lo / k + eps);
  let rhi = inverseSqrt(hi / k + eps);
  *acc0 *= rlo.x; *acc1 *= rlo.y; *acc2 *= rlo.z; *acc3 *= rlo.w;
  *acc4 *= rhi.x; *acc5 *= rhi.y; *acc6 *= rhi.z; *acc7 *= rhi.w;
}
