// Matmul, one invocation per output element: C[b] (+)= op(A[b]) · op(B[b]), f32, row-major.
// The correctness baseline (bench version 1) and the path for tiny outputs, where a 64×64 tile
// would leave most of its invocations idle. Handles any M, N, K ≥ 1 and any strides.
//
// op(A) is M×K: A is stored M×K, or K×M when TRANS_A. op(B) is K×N: B is stored K×N, or N×K when
// TRANS_B. Batch item b = batchBase + workgroup_id.z starts at b * stride in each buffer.
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false; // C += A·B instead of C = A·B

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  let M = params.M;
  let N = params.N;
  let K = params.K;
  if (m >= M || n >= N) { return; }
  let batch = params.batchBase + wid.z;
  let a0 = batch * params.strideA;
  let b0 = batch * params.strideB;
  // Element (m, k) of op(A) and (k, n) of op(B): step along k by the stored layout's stride.
  var aIdx = a0 + select(m * K, m, TRANS_A);
  let aStep = select(1u, M, TRANS_A);
  var bIdx = b0 + select(n, n * K, TRANS_B);
  let bStep = select(N, 1u, TRANS_B);
  var sum = 0.0;
  for (var k = 0u; k < K; k++) {
    sum = fma(a[aIdx], b[bIdx], sum);
    aIdx += aStep;
    bIdx += bStep;
  }
  let cIdx = batch * params.strideC + m * N + n;
  if (ACCUMULATE) {
    c[cIdx] += sum;
  } else {
    c[cIdx] = sum;
  }
}
