// Register-blocked matmul for aligned shapes: C[b] (+)= op(A[b]) · op(B[b]), f32, row-major.
// (Bench version 5; bench/matmul/ holds the versions before it and their figures.)
//
// Each workgroup of 256 invocations computes a 128×128 tile of C; each invocation an 8×8 block held
// in 16 vec4 accumulator *variables* (naga turns a dynamically indexed private array into memory
// traffic: 0.5 TFLOP/s against 17.4 with variables, measured on an H100). K advances BK (8, or 16
// by override) at a time through two workgroup-memory buffers: while the tile in one is
// multiplied, the next tile's global loads are already in flight into registers, then land in the
// other buffer, so one barrier per step suffices. Workgroups walk the output in groups of GROUP_M
// tile rows so that neighbours in time share A and B tiles in L2.
//
// Written for naga's SPIR-V: it clamps every dynamic array index (wgpu's BoundsCheckPolicy
// Restrict) and adds a counter to every loop (force_loop_bounding). So the k loop is unrolled by
// hand (calls with literal k), the main loop does two steps per trip (the buffer number is a
// literal too), and the tiles are [k][column] arrays: after inlining, every clamp of a literal
// folds away and the clamps of the invocation's own column are loop-invariant, leaving each tile
// read a load at a constant offset. The accumulators are module-scope private variables so the
// helper functions can update them.
//
// Needs every row of A, B and C (and every batch stride) to be a whole number of vec4: the
// contiguous dimension of each stored matrix must be a multiple of 4 (encodeMatmul checks this and
// otherwise uses matmul_tiled.wgsl). M, N and K need not be multiples of the tile: edge loads read
// zeros and edge stores are masked.
//
// Thread layout: invocation (tx, ty) in a 16×16 grid owns rows {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3}
// and columns {tx*4 .. tx*4+3, 64+tx*4 .. 64+tx*4+3} of the tile, so each k step reads two vec4 of
// A (a broadcast within a warp) and two of B (16 consecutive vec4 across a warp: no bank conflicts).
override TRANS_A: bool = false; // A stored K×M
override TRANS_B: bool = false; // B stored N×K
override ACCUMULATE: bool = false; // C += A·B
override GROUP_M: u32 = 8u; // tile rows walked together (1: plain row-major order)
override BK: u32 = 8u; // k per step: 8 or 16 (16 halves the barriers, doubles workgroup memory)
// K-start stagger (0 or 1: off). With S > 1, workgroup pid begins its k loop at step
// ((pid % S) · steps) / S of its range and wraps around, so that S consecutive workgroups read S
// different K offsets at once instead of all walking the same columns of A and rows of B in
// lockstep (with row strides of 8 or 16 KiB those addresses share their low bits: the suspected
// DRAM-partition / L2-set hot spot at large K). It only reorders the sum over k.
override STAGGER: u32 = 0u;

const BM = 128u;
const BN = 128u;
// vec4 per k row of a tile: 32 plus one of padding, which keeps the scattered (transposing) stores
// of an untransposed operand in distinct banks. src/tensor/matmul/kernels.ts derives the unpadded
// twin (PAD = 0, so that BK = 16 fits llvmpipe's 32 KiB) by rewriting this line.
const PITCH = 33u;
override RV: u32 = BK / 4u; // vec4 per tile row of an untransposed operand

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32,
  // Split-K (when > 0): workgroup z is the split, covering k in [z·kChunk, (z+1)·kChunk); its
  // partial product goes to batch item z of C (a scratch buffer that a reduction then sums).
  kChunk: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

// Two buffers per operand, each [k][m/4] (or [k][n/4]).
var<workgroup> As0: array<array<vec4<f32>, PITCH>, BK>;
var<workgroup> As1: array<array<vec4<f32>, PITCH>, BK>;
var<workgroup> Bs0: array<array<vec4<f32>, PITCH>, BK>;
var<workgroup> Bs1: array<array<vec4<f32>, PITCH>, BK>;

// Per-invocation values fixed at entry, and the accumulators: c{row r}{column half h} holds rows
// r (r < 4: ty*4 + r; else 64 + ty*4 + r - 4) and columns h*64 + tx*4 .. +3 of the tile.
var<private> tx: u32;
var<private> ty: u32;
var<private> t: u32;
var<private> m0: u32;
var<private> n0: u32;
var<private> baseA: u32;
var<private> baseB: u32;
var<private> kEnd: u32;
var<private> c00: vec4<f32>; var<private> c01: vec4<f32>;
var<private> c10: vec4<f32>; var<private> c11: vec4<f32>;
var<private> c20: vec4<f32>; var<private> c21: vec4<f32>;
var<private> c30: vec4<f32>; var<private> c31: vec4<f32>;
var<private> c40: vec4<f32>; var<private> c41: vec4<f32>;
var<private> c50: vec4<f32>; var<private> c51: vec4<f32>;
var<private> c60: vec4<f32>; var<private> c61: vec4<f32>;
var<private> c70: vec4<f32>; var<private> c71: vec4<f32>;

// Vec4 number e (0 .. BK·32) of op(A)'s tile (rows m0.., columns k0..): 4 consecutive k of one
// row when A is M×K, 4 consecutive m of one k when A is K×M. Consecutive e are consecutive in
// memory. Zeros past the edge (the contiguous dimension being a multiple of 4, a vec4 is either
// wholly inside or wholly outside).
fn loadA(k0: u32, e: u32) -> vec4<f32> {
  let M = params.M;
  let K = params.K;
  if (TRANS_A) {
    let k = k0 + (e >> 5u);
    let m = m0 + (e & 31u) * 4u;
    if (k < kEnd && m < M) { return a[(baseA + k * M + m) >> 2u]; }
  } else {
    let m = m0 + e / RV;
    let k = k0 + (e % RV) * 4u;
    if (m < M && k < kEnd) { return a[(baseA + m * K + k) >> 2u]; }
  }
  return vec4<f32>(0.0);
}

fn loadB(k0: u32, e: u32) -> vec4<f32> {
  let N = params.N;
  let K = params.K;
  if (TRANS_B) {
    let n = n0 + e / RV;
    let k = k0 + (e % RV) * 4u;
    if (n < N && k < kEnd) { return b[(baseB + n * K + k) >> 2u]; }
  } else {
    let k = k0 + (e >> 5u);
    let n = n0 + (e & 31u) * 4u;
    if (k < kEnd && n < N) { return b[(baseB + k * N + n) >> 2u]; }
  }
  return vec4<f32>(0.0);
}

// Writes what loadA returned for vec4 e into buffer `which`, laid out [k][m]; the untransposed
// case scatters the four k values into four rows.
fn storeA(which: u32, e: u32, v: vec4<f32>) {
  if (TRANS_A) {
    let k = e >> 5u;
    let i = e & 31u;
    if (which == 0u) { As0[k][i] = v; } else { As1[k][i] = v; }
  } else {
    let r = e / RV;
    let k = (e % RV) * 4u;
    let i = r >> 2u;
    let j = r & 3u;
    if (which == 0u) {
      As0[k][i][j] = v.x; As0[k + 1u][i][j] = v.y; As0[k + 2u][i][j] = v.z; As0[k + 3u][i][j] = v.w;
    } else {
      As1[k][i][j] = v.x; As1[k + 1u][i][j] = v.y; As1[k + 2u][i][j] = v.z; As1[k + 3u][i][j] = v.w;
    }
  }
}

fn storeB(which: u32, e: u32, v: vec4<f32>) {
  if (TRANS_B) {
    let r = e / RV;
    let k = (e % RV) * 4u;
    let i = r >> 2u;
    let j = r & 3u;
    if (which == 0u) {
      Bs0[k][i][j] = v.x; Bs0[k + 1u][i][j] = v.y; Bs0[k + 2u][i][j] = v.z; Bs0[k + 3u][i][j] = v.w;
    } else {
      Bs1[k][i][j] = v.x; Bs1[k + 1u][i][j] = v.y; Bs1[k + 2u][i][j] = v.z; Bs1[k + 3u][i][j] = v.w;
    }
  } else {
    let k = e >> 5u;
    let i = e & 31u;
    if (which == 0u) { Bs0[k][i] = v; } else { Bs1[k][i] = v; }
  }
}

// One k of the outer product on buffer `which`: 4 tile reads, 64 FMAs.
fn multiply(which: u32, k: u32) {
  var a0: vec4<f32>;
  var a1: vec4<f32>;
  var b0: vec4<f32>;
  var b1: vec4<f32>;
  if (which == 0u) {
    a0 = As0[k][ty]; a1 = As0[k][ty + 16u]; b0 = Bs0[k][tx]; b1 = Bs0[k][tx + 16u];
  } else {
    a0 = As1[k][ty]; a1 = As1[k][ty + 16u]; b0 = Bs1[k][tx]; b1 = Bs1[k][tx + 16u];
  }
  c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
  c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
  c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
  c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
  c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
  c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
  c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
  c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
}

// First k of step s (of `steps`) when the loop starts at step `rot` and wraps around. Both are
// below `steps` (s may equal it for a load that is not used), so one conditional subtraction
// wraps: no integer division per step, and with STAGGER off (rot = 0) the add and select are all.
fn kOf(s: u32, steps: u32, kStart: u32, rot: u32) -> u32 {
  let j = s + rot;
  return kStart + select(j, j - steps, j >= steps) * BK;
}

// Step s of the k loop on buffer `which` (a literal at both call sites): issue the next step's
// global loads, multiply the current tiles, park the loads in the other buffer, synchronise.
fn stage(which: u32, s: u32, steps: u32, kStart: u32, rot: u32) {
  let more = s + 1u < steps;
  let k1 = kOf(s + 1u, steps, kStart, rot);
  var nextA0 = vec4<f32>(0.0);
  var nextB0 = vec4<f32>(0.0);
  var nextA1 = vec4<f32>(0.0);
  var nextB1 = vec4<f32>(0.0);
  if (more) {
    nextA0 = loadA(k1, t);
    nextB0 = loadB(k1, t);
    if (BK == 16u) {
      nextA1 = loadA(k1, t + 256u);
      nextB1 = loadB(k1, t + 256u);
    }
  }
  multiply(which, 0u); multiply(which, 1u); multiply(which, 2u); multiply(which, 3u);
  multiply(which, 4u); multiply(which, 5u); multiply(which, 6u); multiply(which, 7u);
  if (BK == 16u) {
    multiply(which, 8u); multiply(which, 9u); multiply(which, 10u); multiply(which, 11u);
    multiply(which, 12u); multiply(which, 13u); multiply(which, 14u); multiply(which, 15u);
  }
  if (more) {
    storeA(1u - which, t, nextA0);
    storeB(1u - which, t, nextB0);
    if (BK == 16u) {
      storeA(1u - which, t + 256u, nextA1);
      storeB(1u - which, t + 256u, nextB1);
    }
  }
  workgroupBarrier();
}

fn storeC(base: u32, m: u32, n: u32, v: vec4<f32>) {
  if (m < params.M && n < params.N) {
    let i = (base + m * params.N + n) >> 2u;
    if (ACCUMULATE) {
      c[i] = c[i] + v;
    } else {
      c[i] = v;
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) lindex: u32) {
  let tilesM = (params.M + BM - 1u) / BM;
  let tilesN = (params.N + BN - 1u) / BN;
  // Flat tile index → (tile row, tile column), GROUP_M tile rows at a time.
  let pid = wid.x + wid.y * nwg.x;
  if (pid >= tilesM * tilesN) { return; }
  let perGroup = GROUP_M * tilesN;
  let firstM = (pid / perGroup) * GROUP_M;
  let groupRows = min(tilesM - firstM, GROUP_M);
  let inGroup = pid % perGroup;
  m0 = (firstM + inGroup % groupRows) * BM;
  n0 = (inGroup / groupRows) * BN;
  // Values that decide control flow around barriers are `let`s of uniform inputs, so that they
  // are provably uniform (a read of a private variable is not).
  let split = params.kChunk > 0u;
  let batch = select(params.batchBase + wid.z, params.batchBase, split);
  let kStart = select(0u, wid.z * params.kChunk, split);
  let kStop = select(params.K, min(params.K, kStart + params.kChunk), split);
  let baseC = select(batch, wid.z, split) * params.strideC;
  kEnd = kStop;
  baseA = batch * params.strideA;
  baseB = batch * params.strideB;
  tx = lid.x;
  ty = lid.y;
  t = lindex;

  // Each invocation moves BK / 8 vec4 of each operand per step: slots t and, for BK = 16, t + 256.
  // (A split-K slice may be empty: steps = 0 then, and the first loads read zeros past kEnd.)
  let steps = (kStop - kStart + BK - 1u) / BK;
  let rot = select(0u, ((pid % max(STAGGER, 1u)) * steps) / max(STAGGER, 1u), STAGGER > 1u);
  let k0 = select(kStart, kOf(0u, steps, kStart, rot), steps > 0u);
  storeA(0u, t, loadA(k0, t));
  storeB(0u, t, loadB(k0, t));
  if (BK == 16u) {
    storeA(0u, t + 256u, loadA(k0, t + 256u));
    storeB(0u, t + 256u, loadB(k0, t + 256u));
  }
  workgroupBarrier();
  for (var s = 0u; s < steps; s += 2u) {
    stage(0u, s, steps, kStart, rot);
    if (s + 1u < steps) { stage(1u, s + 1u, steps, kStart, rot); }
  }

  let r0 = m0 + ty * 4u;
  let r1 = r0 + 64u;
  let na = n0 + tx * 4u;
  let nb = na + 64u;
  storeC(baseC, r0, na, c00); storeC(baseC, r0, nb, c01);
  storeC(baseC, r0 + 1u, na, c10); storeC(baseC, r0 + 1u, nb, c11);
  storeC(baseC, r0 + 2u, na, c20); storeC(baseC, r0 + 2u, nb, c21);
  storeC(baseC, r0 + 3u, na, c30); storeC(baseC, r0 + 3u, nb, c31);
  storeC(baseC, r1, na, c40); storeC(baseC, r1, nb, c41);
  storeC(baseC, r1 + 1u, na, c50); storeC(baseC, r1 + 1u, nb, c51);
  storeC(baseC, r1 + 2u, na, c60); storeC(baseC, r1 + 2u, nb, c61);
  storeC(baseC, r1 + 3u, na, c70); storeC(baseC, r1 + 3u, nb, c71);
}
