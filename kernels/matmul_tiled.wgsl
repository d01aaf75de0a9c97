// Tiled matmul for any shape and alignment: C[b] (+)= op(A[b]) · op(B[b]), f32, row-major.
//
// The general path (and bench version 2): no dimension or stride needs to be a multiple of
// anything, so global memory is read one f32 at a time. Each workgroup of 256 invocations computes
// a 64×64 tile of C, each invocation a 4×4 block in four vec4 accumulator variables; K advances 16
// at a time through two workgroup-memory buffers (the next step's loads are issued before the
// arithmetic on the current one, so one barrier per step suffices). Smaller tiles than
// matmul_vec4.wgsl also mean more workgroups for small products.
override TRANS_A: bool = false; // A stored K×M
override TRANS_B: bool = false; // B stored N×K
override ACCUMULATE: bool = false; // C += A·B

const BM = 64u;
const BN = 64u;
const BK = 16u;
const PITCH = 17u; // vec4 per k row of a tile, padded by one
const TILE = BK * PITCH;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32,
  // Split-K (when > 0): workgroup z is the split, covering k in [z·kChunk, (z+1)·kChunk); its
  // partial product goes to batch item z of C (a scratch buffer that a reduction then sums).
  kChunk: u32,
  // Row strides of the stored A, B and C: dense (K or M, N or K, N) except for a block of a
  // product split because an operand spans more than one storage binding
  // (src/tensor/matmul/blocked.ts), which reads and writes sub-matrices of the whole ones.
  ldA: u32, ldB: u32, ldC: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> As: array<vec4<f32>, 2u * TILE>; // [buffer][k][m/4]
var<workgroup> Bs: array<vec4<f32>, 2u * TILE>; // [buffer][k][n/4]

var<private> kEnd: u32; // end of this workgroup's k range

// Element i (0..3) that invocation t loads from a 64×16 (or 16×64) tile: consecutive invocations
// take consecutive addresses of the stored layout. Returns (row-of-tile, k-of-tile).
fn spotAlongK(t: u32, i: u32) -> vec2u { return vec2u((t >> 4u) + 16u * i, t & 15u); }
fn spotAlongRow(t: u32, i: u32) -> vec2u { return vec2u(t & 63u, (t >> 6u) + 4u * i); }

fn elemA(base: u32, m0: u32, k0: u32, t: u32, i: u32) -> f32 {
  let s = select(spotAlongK(t, i), spotAlongRow(t, i), TRANS_A);
  let m = m0 + s.x;
  let k = k0 + s.y;
  if (m >= params.M || k >= kEnd) { return 0.0; }
  return a[base + select(m * params.ldA + k, k * params.ldA + m, TRANS_A)];
}

fn elemB(base: u32, n0: u32, k0: u32, t: u32, i: u32) -> f32 {
  let s = select(spotAlongRow(t, i), spotAlongK(t, i), TRANS_B);
  let n = n0 + s.x;
  let k = k0 + s.y;
  if (n >= params.N || k >= kEnd) { return 0.0; }
  return b[base + select(k * params.ldB + n, n * params.ldB + k, TRANS_B)];
}

fn loadA(base: u32, m0: u32, k0: u32, t: u32) -> vec4<f32> {
  return vec4<f32>(elemA(base, m0, k0, t, 0u), elemA(base, m0, k0, t, 1u),
                   elemA(base, m0, k0, t, 2u), elemA(base, m0, k0, t, 3u));
}

fn loadB(base: u32, n0: u32, k0: u32, t: u32) -> vec4<f32> {
  return vec4<f32>(elemB(base, n0, k0, t, 0u), elemB(base, n0, k0, t, 1u),
                   elemB(base, n0, k0, t, 2u), elemB(base, n0, k0, t, 3u));
}

fn putA(buf: u32, s: vec2u, v: f32) { As[buf + s.y * PITCH + (s.x >> 2u)][s.x & 3u] = v; }
fn putB(buf: u32, s: vec2u, v: f32) { Bs[buf + s.y * PITCH + (s.x >> 2u)][s.x & 3u] = v; }

fn storeA(buf: u32, t: u32, v: vec4<f32>) {
  if (TRANS_A) {
    putA(buf, spotAlongRow(t, 0u), v.x); putA(buf, spotAlongRow(t, 1u), v.y);
    putA(buf, spotAlongRow(t, 2u), v.z); putA(buf, spotAlongRow(t, 3u), v.w);
  } else {
    putA(buf, spotAlongK(t, 0u), v.x); putA(buf, spotAlongK(t, 1u), v.y);
    putA(buf, spotAlongK(t, 2u), v.z); putA(buf, spotAlongK(t, 3u), v.w);
  }
}

fn storeB(buf: u32, t: u32, v: vec4<f32>) {
  if (TRANS_B) {
    putB(buf, spotAlongK(t, 0u), v.x); putB(buf, spotAlongK(t, 1u), v.y);
    putB(buf, spotAlongK(t, 2u), v.z); putB(buf, spotAlongK(t, 3u), v.w);
  } else {
    putB(buf, spotAlongRow(t, 0u), v.x); putB(buf, spotAlongRow(t, 1u), v.y);
    putB(buf, spotAlongRow(t, 2u), v.z); putB(buf, spotAlongRow(t, 3u), v.w);
  }
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

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let n0 = wid.x * BN;
  let m0 = wid.y * BM;
  // `let`s of uniform inputs, so that the loop around the barriers is provably uniform.
  let split = params.kChunk > 0u;
  let batch = select(params.batchBase + wid.z, params.batchBase, split);
  let kStart = select(0u, wid.z * params.kChunk, split);
  let kStop = select(params.K, min(params.K, kStart + params.kChunk), split);
  let baseC = select(batch, wid.z, split) * params.strideC;
  kEnd = kStop;
  let baseA = batch * params.strideA;
  let baseB = batch * params.strideB;
  let tx = lid.x;
  let ty = lid.y;

  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);

  let steps = (kStop - kStart + BK - 1u) / BK;
  storeA(0u, t, loadA(baseA, m0, kStart, t));
  storeB(0u, t, loadB(baseB, n0, kStart, t));
  workgroupBarrier();

  for (var s = 0u; s < steps; s++) {
    let cur = (s & 1u) * TILE;
    let more = s + 1u < steps;
    var nextA = vec4<f32>(0.0);
    var nextB = vec4<f32>(0.0);
    if (more) {
      nextA = loadA(baseA, m0, kStart + (s + 1u) * BK, t);
      nextB = loadB(baseB, n0, kStart + (s + 1u) * BK, t);
    }
    for (var k = 0u; k < BK; k++) {
      let av = As[cur + k * PITCH + ty];
      let bv = Bs[cur + k * PITCH + tx];
      c0 = fma(vec4<f32>(av.x), bv, c0);
      c1 = fma(vec4<f32>(av.y), bv, c1);
      c2 = fma(vec4<f32>(av.z), bv, c2);
      c3 = fma(vec4<f32>(av.w), bv, c3);
    }
    if (more) {
      storeA(TILE - cur, t, nextA);
      storeB(TILE - cur, t, nextB);
    }
    workgroupBarrier();
  }

  let m = m0 + ty * 4u;
  let n = n0 + tx * 4u;
  storeRow(baseC, m, n, c0);
  storeRow(baseC, m + 1u, n, c1);
  storeRow(baseC, m + 2u, n, c2);
  storeRow(baseC, m + 3u, n, c3);
}
