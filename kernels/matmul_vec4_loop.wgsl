// The looped form of kernels/matmul_vec4.wgsl (bench version 4; that file is version 5), kept
// selectable (`vec4Tuning: { unrolled: false }`) until the H100 says which is faster. What changed
// from version 3: a second workgroup buffer with register prefetch (one barrier per step), the
// grouped tile order, transposes, batches and accumulate. What version 5 changed after it: the k
// loop unrolled by hand and the tiles as [k][column] nested arrays, because naga clamps every
// dynamic workgroup-array index (BoundsCheckPolicy::Restrict) and adds a counter to every loop
// (force_loop_bounding); here each of the four tile reads per k pays an add and a min.
//
// Register-blocked matmul for aligned shapes: C[b] (+)= op(A[b]) · op(B[b]), f32, row-major.
//
// Each workgroup of 256 invocations computes a 128×128 tile of C; each invocation an 8×8 block held
// in 16 vec4 accumulator *variables* (naga turns a dynamically indexed private array into memory
// traffic: 0.5 TFLOP/s against 17.4 with variables, measured on an H100). K advances BK (8, or 16
// by override) at a time through two workgroup-memory buffers: while the tile in one is
// multiplied, the next tile's global loads are already in flight into registers, then land in the
// other buffer, so one barrier per step suffices. Workgroups walk the output in groups of GROUP_M
// tile rows so that neighbours in time share A and B tiles in L2.
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
// Row pad of the workgroup tiles in vec4. 1 keeps the scattered (transposing) stores of an
// untransposed operand in distinct banks; 0 fits BK = 16 into 32 KiB (llvmpipe's limit).
override PAD: u32 = 1u;

const BM = 128u;
const BN = 128u;
override PITCH: u32 = BM / 4u + PAD; // vec4 per k row of a tile
override TILE: u32 = BK * PITCH; // vec4 per buffer
override RV: u32 = BK / 4u; // vec4 per tile row of an untransposed operand

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

// [buffer][k][m/4] and [buffer][k][n/4].
var<workgroup> As: array<vec4<f32>, 2u * TILE>;
var<workgroup> Bs: array<vec4<f32>, 2u * TILE>;

// Vec4 number e (0 .. BK·32) of op(A)'s tile (rows m0.., columns k0..): 4 consecutive k of one
// row when A is M×K, 4 consecutive m of one k when A is K×M. Consecutive e are consecutive in
// memory. Zeros past the edge (the contiguous dimension being a multiple of 4, a vec4 is either
// wholly inside or wholly outside).
fn loadA(base: u32, m0: u32, k0: u32, e: u32) -> vec4<f32> {
  let M = params.M;
  let K = params.K;
  if (TRANS_A) {
    let k = k0 + (e >> 5u);
    let m = m0 + (e & 31u) * 4u;
    if (k < K && m < M) { return a[(base + k * M + m) >> 2u]; }
  } else {
    let m = m0 + e / RV;
    let k = k0 + (e % RV) * 4u;
    if (m < M && k < K) { return a[(base + m * K + k) >> 2u]; }
  }
  return vec4<f32>(0.0);
}

fn loadB(base: u32, n0: u32, k0: u32, e: u32) -> vec4<f32> {
  let N = params.N;
  let K = params.K;
  if (TRANS_B) {
    let n = n0 + e / RV;
    let k = k0 + (e % RV) * 4u;
    if (n < N && k < K) { return b[(base + n * K + k) >> 2u]; }
  } else {
    let k = k0 + (e >> 5u);
    let n = n0 + (e & 31u) * 4u;
    if (k < K && n < N) { return b[(base + k * N + n) >> 2u]; }
  }
  return vec4<f32>(0.0);
}

// Writes what loadA returned for vec4 e into tile buffer `buf`, laid out [k][m]; the
// untransposed case scatters the four k values into four rows.
fn storeA(buf: u32, e: u32, v: vec4<f32>) {
  if (TRANS_A) {
    As[buf + (e >> 5u) * PITCH + (e & 31u)] = v;
  } else {
    let r = e / RV;
    let i = buf + (e % RV) * 4u * PITCH + (r >> 2u);
    let j = r & 3u;
    As[i][j] = v.x;
    As[i + PITCH][j] = v.y;
    As[i + 2u * PITCH][j] = v.z;
    As[i + 3u * PITCH][j] = v.w;
  }
}

fn storeB(buf: u32, e: u32, v: vec4<f32>) {
  if (TRANS_B) {
    let r = e / RV;
    let i = buf + (e % RV) * 4u * PITCH + (r >> 2u);
    let j = r & 3u;
    Bs[i][j] = v.x;
    Bs[i + PITCH][j] = v.y;
    Bs[i + 2u * PITCH][j] = v.z;
    Bs[i + 3u * PITCH][j] = v.w;
  } else {
    Bs[buf + (e >> 5u) * PITCH + (e & 31u)] = v;
  }
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
        @builtin(local_invocation_index) t: u32) {
  let tilesM = (params.M + BM - 1u) / BM;
  let tilesN = (params.N + BN - 1u) / BN;
  // Flat tile index → (tile row, tile column), GROUP_M tile rows at a time.
  let pid = wid.x + wid.y * nwg.x;
  if (pid >= tilesM * tilesN) { return; }
  let perGroup = GROUP_M * tilesN;
  let firstM = (pid / perGroup) * GROUP_M;
  let groupRows = min(tilesM - firstM, GROUP_M);
  let inGroup = pid % perGroup;
  let m0 = (firstM + inGroup % groupRows) * BM;
  let n0 = (inGroup / groupRows) * BN;

  let batch = params.batchBase + wid.z;
  let baseA = batch * params.strideA;
  let baseB = batch * params.strideB;
  let tx = lid.x;
  let ty = lid.y;

  var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
  var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
  var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
  var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
  var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);

  // Each invocation moves BK / 8 vec4 of each operand per step: slots t and, for BK = 16, t + 256.
  let two = BK == 16u;
  let steps = (params.K + BK - 1u) / BK;
  storeA(0u, t, loadA(baseA, m0, 0u, t));
  storeB(0u, t, loadB(baseB, n0, 0u, t));
  if (two) {
    storeA(0u, t + 256u, loadA(baseA, m0, 0u, t + 256u));
    storeB(0u, t + 256u, loadB(baseB, n0, 0u, t + 256u));
  }
  workgroupBarrier();

  for (var s = 0u; s < steps; s++) {
    let cur = (s & 1u) * TILE;
    let more = s + 1u < steps;
    // Issue the next step's global loads before the arithmetic that hides their latency.
    let k1 = (s + 1u) * BK;
    var nextA0 = vec4<f32>(0.0);
    var nextB0 = vec4<f32>(0.0);
    var nextA1 = vec4<f32>(0.0);
    var nextB1 = vec4<f32>(0.0);
    if (more) {
      nextA0 = loadA(baseA, m0, k1, t);
      nextB0 = loadB(baseB, n0, k1, t);
      if (two) {
        nextA1 = loadA(baseA, m0, k1, t + 256u);
        nextB1 = loadB(baseB, n0, k1, t + 256u);
      }
    }
    for (var k = 0u; k < BK; k++) {
      let ra = cur + k * PITCH + ty;
      let rb = cur + k * PITCH + tx;
      let a0 = As[ra];
      let a1 = As[ra + 16u];
      let b0 = Bs[rb];
      let b1 = Bs[rb + 16u];
      c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
      c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
      c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
      c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
      c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
      c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
      c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
      c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
    }
    if (more) {
      let nxt = TILE - cur;
      storeA(nxt, t, nextA0);
      storeB(nxt, t, nextB0);
      if (two) {
        storeA(nxt, t + 256u, nextA1);
        storeB(nxt, t + 256u, nextB1);
      }
    }
    workgroupBarrier();
  }

  let baseC = batch * params.strideC;
  let r0 = m0 + ty * 4u;
  let r1 = r0 + 64u;
  let n0a = n0 + tx * 4u;
  let n0b = n0a + 64u;
  storeC(baseC, r0, n0a, c00); storeC(baseC, r0, n0b, c01);
  storeC(baseC, r0 + 1u, n0a, c10); storeC(baseC, r0 + 1u, n0b, c11);
  storeC(baseC, r0 + 2u, n0a, c20); storeC(baseC, r0 + 2u, n0b, c21);
  storeC(baseC, r0 + 3u, n0a, c30); storeC(baseC, r0 + 3u, n0b, c31);
  storeC(baseC, r1, n0a, c40); storeC(baseC, r1, n0b, c41);
  storeC(baseC, r1 + 1u, n0a, c50); storeC(baseC, r1 + 1u, n0b, c51);
  storeC(baseC, r1 + 2u, n0a, c60); storeC(baseC, r1 + 2u, n0b, c61);
  storeC(baseC, r1 + 3u, n0a, c70); storeC(baseC, r1 + 3u, n0b, c71);
}
