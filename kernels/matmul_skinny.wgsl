// Matmul for few rows: C (+)= A · op(B), f32, row-major, M ≤ 64 (decode steps: M = batch rows,
// one token each; B the weights, N×K when TRANS_B as nn.Linear stores them, or K×N).
//
// Why not the tiled kernels: at M = 64 a 64×64 or 128×128 output tile leaves N/64 workgroups
// (8–24 for the 29M anchor) on a 132-SM GPU, each walking all of K with a barrier per step.
// Here a workgroup owns every row (8·RG ≥ M) and a thin block of BN = 4·CG columns, so there are
// N/BN workgroups (64–384); its 256 invocations split K among themselves (KS slices, interleaved
// so that neighbouring invocations read neighbouring vec4 of a row: coalesced), read A and B
// straight from global memory (A, a few hundred KB at most, is shared by every workgroup through
// L2 and L1; each B element is read by one workgroup), with the next step's 12 loads issued
// before this step's 128 FMAs (PREFETCH) and no barrier in the k loop. The slices are summed at the end by a
// fixed tree in workgroup memory, so the result does not depend on timing. A long K can also be
// split across workgroups (kChunk > 0, along z): each writes its partial to item z of C (a
// scratch buffer) and matmul_splitk_reduce.wgsl sums them in order.
//
// Invocation t = s + KS·(g + CG·r) owns rows 8r .. 8r+7 and columns 4g .. 4g+3 of the block, and
// the k runs 4·(s + KS·i) .. +3 of the workgroup's k range, holding 8 vec4 accumulators (one per
// row, over the 4 columns). Rows ≥ M, columns ≥ N and k ≥ the range's end read zeros.
//
// The A and B bindings and `load4A` / `load4B` come from a prelude prepended by
// src/tensor/matmul/kernels.ts: matmul_skinny_vec4.wgsl (array<vec4<f32>>, one load per run: rows
// a whole number of vec4) or matmul_skinny_scalar.wgsl (array<f32>, four guarded loads: any shape),
// optionally followed by an A prologue: matmul_skinny_swiglu.wgsl (A = silu(gate) · up of a joined
// [M, 2K] projection, whose rows are 2K apart: hence A's row stride in params.strideA), or
// matmul_skinny_add_rms.wgsl (A = rmsNorm(x + r) · g, which also needs the two "hook:" comments
// below replaced by calls: kernels.ts does that, every other form leaves them comments).
override TRANS_B: bool = false; // B stored N×K
override ACCUMULATE: bool = false; // C += A·op(B)
override RG: u32 = 8u; // groups of 8 rows: the workgroup covers rows 0 .. 8·RG − 1 (1, 2, 4 or 8)
override CG: u32 = 4u; // groups of 4 columns: the workgroup covers BN = 4·CG columns (1, 2, 4, 8)
override KS: u32 = 256u / (RG * CG); // k slices per workgroup (a power of two, ≥ 4)
// Issue the next step's loads before this step's FMAs (12 more vec4 registers per invocation:
// latency hidden within a warp), or after them (fewer registers: more warps per SM may fit).
override PREFETCH: bool = true;

// The matmul kernels' parameter layout (src/tensor/matmul/splitk.ts fills it for a split):
// strideA is the distance between A's rows (K, or 2K with the SwiGLU prologue); strideC the
// distance between partials when kChunk > 0; strideB, batchBase, ldA unused. ldB and ldC are the
// row strides of the stored B and of C: dense (K when TRANS_B else N, and N) except for a block of
// a product split because an operand spans more than one storage binding
// (src/tensor/matmul/blocked.ts).
struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32,
  kChunk: u32,
  ldA: u32, ldB: u32, ldC: u32, _pad: u32,
}

@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// The tree's exchange buffer: at most 128 writers (half the slices) × 8 vec4 accumulators, 16 KB.
var<workgroup> red: array<vec4<f32>, 1024>;

// Elements of a 4-run starting at `lo` that lie before `hi` (0 when lo ≥ hi).
fn span(lo: u32, hi: u32) -> u32 {
  return select(0u, min(4u, hi - lo), lo < hi);
}

// One step's operands: 8 rows of A (4 k each) and 4 vec4 of B (4 columns × 4 k, laid out as
// stored: per column when TRANS_B, per k otherwise).
struct Step {
  a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
  a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>,
  b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
}

fn rowA(m: u32, rows: u32, r: u32, k: u32, kHi: u32) -> vec4<f32> {
  return load4A((m + r) * params.strideA + k, select(0u, span(k, kHi), r < rows));
}

fn colB(n: u32, j: u32, k: u32, kHi: u32) -> vec4<f32> {
  if (TRANS_B) {
    return load4B((n + j) * params.ldB + k, select(0u, span(k, kHi), n + j < params.N));
  }
  return load4B((k + j) * params.ldB + n, select(0u, span(n, params.N), k + j < kHi));
}

fn fetch(m: u32, rows: u32, n: u32, k: u32, kHi: u32) -> Step {
  return Step(
    rowA(m, rows, 0u, k, kHi), rowA(m, rows, 1u, k, kHi),
    rowA(m, rows, 2u, k, kHi), rowA(m, rows, 3u, k, kHi),
    rowA(m, rows, 4u, k, kHi), rowA(m, rows, 5u, k, kHi),
    rowA(m, rows, 6u, k, kHi), rowA(m, rows, 7u, k, kHi),
    colB(n, 0u, k, kHi), colB(n, 1u, k, kHi), colB(n, 2u, k, kHi), colB(n, 3u, k, kHi));
}

// acc + Σ_i a[i] · bk_i: one row's 4 k against the 4 columns.
fn madd(acc: vec4<f32>, a: vec4<f32>, k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>,
        k3: vec4<f32>) -> vec4<f32> {
  return fma(vec4<f32>(a.w), k3, fma(vec4<f32>(a.z), k2,
         fma(vec4<f32>(a.y), k1, fma(vec4<f32>(a.x), k0, acc))));
}

fn storeRow(base: u32, m: u32, n: u32, v: vec4<f32>) {
  if (m >= params.M) { return; }
  let row = base + m * params.ldC;
  for (var j = 0u; j < 4u; j++) {
    if (n + j < params.N) {
      if (ACCUMULATE) {
        c[row + n + j] += v[j];
      } else {
        c[row + n + j] = v[j];
      }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let split = params.kChunk > 0u;
  let kLo = select(0u, wid.z * params.kChunk, split);
  let kHi = select(params.K, min(params.K, kLo + params.kChunk), split);
  let base = select(0u, wid.z * params.strideC, split);
  let s = t % KS;
  let g = (t / KS) % CG;
  let r = t / (KS * CG);
  let m = r * 8u;
  let rows = select(0u, min(8u, params.M - m), m < params.M);
  let n = wid.x * (4u * CG) + g * 4u;

  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  var acc4 = vec4<f32>(0.0); var acc5 = vec4<f32>(0.0);
  var acc6 = vec4<f32>(0.0); var acc7 = vec4<f32>(0.0);

  let stride = 4u * KS;
  var k = kLo + 4u * s;
  var cur = fetch(m, rows, n, k, kHi);
  while (k < kHi) {
    // hook: step (the add-RMS prologue's addRmsStep; a comment in every other form)
    var next: Step;
    if (PREFETCH) { next = fetch(m, rows, n, k + stride, kHi); }
    var k0 = cur.b0; var k1 = cur.b1; var k2 = cur.b2; var k3 = cur.b3;
    if (TRANS_B) {
      // Stored per column (4 k each): regroup per k (4 columns each).
      k0 = vec4<f32>(cur.b0.x, cur.b1.x, cur.b2.x, cur.b3.x);
      k1 = vec4<f32>(cur.b0.y, cur.b1.y, cur.b2.y, cur.b3.y);
      k2 = vec4<f32>(cur.b0.z, cur.b1.z, cur.b2.z, cur.b3.z);
      k3 = vec4<f32>(cur.b0.w, cur.b1.w, cur.b2.w, cur.b3.w);
    }
    acc0 = madd(acc0, cur.a0, k0, k1, k2, k3);
    acc1 = madd(acc1, cur.a1, k0, k1, k2, k3);
    acc2 = madd(acc2, cur.a2, k0, k1, k2, k3);
    acc3 = madd(acc3, cur.a3, k0, k1, k2, k3);
    acc4 = madd(acc4, cur.a4, k0, k1, k2, k3);
    acc5 = madd(acc5, cur.a5, k0, k1, k2, k3);
    acc6 = madd(acc6, cur.a6, k0, k1, k2, k3);
    acc7 = madd(acc7, cur.a7, k0, k1, k2, k3);
    if (!PREFETCH) { next = fetch(m, rows, n, k + stride, kHi); }
    cur = next;
    k += stride;
  }

  // Sum the KS slices by halving: slice s < h adds slice s + h, h = KS/2, KS/4, ..., 1. The
  // h·CG·RG ≤ 128 writers of a round each own a column of `red` (consecutive invocations,
  // consecutive words), and the order of every addition is fixed.
  for (var h = KS / 2u; h > 0u; h = h / 2u) {
    let slot = h * (g + CG * r);
    if (s >= h && s < 2u * h) {
      let w = slot + s - h;
      red[w] = acc0; red[128u + w] = acc1; red[256u + w] = acc2; red[384u + w] = acc3;
      red[512u + w] = acc4; red[640u + w] = acc5; red[768u + w] = acc6; red[896u + w] = acc7;
    }
    workgroupBarrier();
    if (s < h) {
      let w = slot + s;
      acc0 += red[w]; acc1 += red[128u + w]; acc2 += red[256u + w]; acc3 += red[384u + w];
      acc4 += red[512u + w]; acc5 += red[640u + w]; acc6 += red[768u + w]; acc7 += red[896u + w];
    }
    workgroupBarrier();
  }

  // hook: scale (the add-RMS prologue's addRmsScale; a comment in every other form)
  if (s == 0u) {
    storeRow(base, m, n, acc0); storeRow(base, m + 1u, n, acc1);
    storeRow(base, m + 2u, n, acc2); storeRow(base, m + 3u, n, acc3);
    storeRow(base, m + 4u, n, acc4); storeRow(base, m + 5u, n, acc5);
    storeRow(base, m + 6u, n, acc6); storeRow(base, m + 7u, n, acc7);
  }
}
