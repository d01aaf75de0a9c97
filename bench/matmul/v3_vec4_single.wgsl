// Bench version 3 (history; the promoted kernel is kernels/matmul_vec4.wgsl): C = A·B, f32,
// row-major, A M×K, B K×N, no transposes, no batch, no accumulate.
//
// What changed from version 2 (kernels/matmul_tiled.wgsl): 128×128 tiles instead of 64×64, 8×8
// outputs per invocation in 16 vec4 accumulator variables instead of 4×4, global loads of whole
// vec4 (so K and N must be multiples of 4). Still one workgroup-memory buffer (two barriers per
// step: load, sync, multiply, sync) and tiles in plain row-major order. Version 4 adds the second
// buffer with register prefetch and the grouped tile order.
const BM = 128u;
const BN = 128u;
const BK = 8u;
const PITCH = 33u;

struct Params {
  M: u32, N: u32, K: u32,
  strideA: u32, strideB: u32, strideC: u32,
  batchBase: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> As: array<vec4<f32>, BK * PITCH>; // [k][m/4]
var<workgroup> Bs: array<vec4<f32>, BK * PITCH>; // [k][n/4]

fn storeC(m: u32, n: u32, v: vec4<f32>) {
  if (m < params.M && n < params.N) { c[(m * params.N + n) >> 2u] = v; }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let M = params.M;
  let N = params.N;
  let K = params.K;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
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
  for (var k0 = 0u; k0 < K; k0 += BK) {
    // A: invocation t loads 4 consecutive k of row t/2 and scatters them into 4 rows of As.
    let am = m0 + (t >> 1u);
    let ak = k0 + (t & 1u) * 4u;
    var av = vec4<f32>(0.0);
    if (am < M && ak < K) { av = a[(am * K + ak) >> 2u]; }
    let ai = (t & 1u) * 4u * PITCH + (t >> 3u);
    let aj = (t >> 1u) & 3u;
    As[ai][aj] = av.x;
    As[ai + PITCH][aj] = av.y;
    As[ai + 2u * PITCH][aj] = av.z;
    As[ai + 3u * PITCH][aj] = av.w;
    // B: invocation t loads 4 consecutive n of row k0 + t/32.
    let bk = k0 + (t >> 5u);
    let bn = n0 + (t & 31u) * 4u;
    var bv = vec4<f32>(0.0);
    if (bk < K && bn < N) { bv = b[(bk * N + bn) >> 2u]; }
    Bs[(t >> 5u) * PITCH + (t & 31u)] = bv;
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a0 = As[k * PITCH + ty];
      let a1 = As[k * PITCH + 16u + ty];
      let b0 = Bs[k * PITCH + tx];
      let b1 = Bs[k * PITCH + 16u + tx];
      c00 = fma(vec4<f32>(a0.x), b0, c00); c01 = fma(vec4<f32>(a0.x), b1, c01);
      c10 = fma(vec4<f32>(a0.y), b0, c10); c11 = fma(vec4<f32>(a0.y), b1, c11);
      c20 = fma(vec4<f32>(a0.z), b0, c20); c21 = fma(vec4<f32>(a0.z), b1, c21);
      c30 = fma(vec4<f32>(a0.w), b0, c30); c31 = fma(vec4<f32>(a0.w), b1, c31);
      c40 = fma(vec4<f32>(a1.x), b0, c40); c41 = fma(vec4<f32>(a1.x), b1, c41);
      c50 = fma(vec4<f32>(a1.y), b0, c50); c51 = fma(vec4<f32>(a1.y), b1, c51);
      c60 = fma(vec4<f32>(a1.z), b0, c60); c61 = fma(vec4<f32>(a1.z), b1, c61);
      c70 = fma(vec4<f32>(a1.w), b0, c70); c71 = fma(vec4<f32>(a1.w), b1, c71);
    }
    workgroupBarrier();
  }
  let r0 = m0 + ty * 4u;
  let r1 = r0 + 64u;
  let na = n0 + tx * 4u;
  let nb = na + 64u;
  storeC(r0, na, c00); storeC(r0, nb, c01);
  storeC(r0 + 1u, na, c10); storeC(r0 + 1u, nb, c11);
  storeC(r0 + 2u, na, c20); storeC(r0 + 2u, nb, c21);
  storeC(r0 + 3u, na, c30); storeC(r0 + 3u, nb, c31);
  storeC(r1, na, c40); storeC(r1, nb, c41);
  storeC(r1 + 1u, na, c50); storeC(r1 + 1u, nb, c51);
  storeC(r1 + 2u, na, c60); storeC(r1 + 2u, nb, c61);
  storeC(r1 + 3u, na, c70); storeC(r1 + 3u, nb, c71);
}
