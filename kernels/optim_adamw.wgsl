// The optimizer's kernels: global gradient norm in two fixed-order stages (per-parameter partial
// sums of squares, then one workgroup for the total and the clip scale), and the AdamW update
// (decoupled weight decay, bias correction) reading that scale from the GPU, so nothing is read back.
const WG: u32 = 256u;

var<workgroup> sh: array<f32, WG>;

// 256 → 32 partials of 8 → 1 (three barriers; fixed order, so the norm is deterministic).
fn tree_sum(v: f32, lid: u32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 32u) {
    var s = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) { s += sh[lid * 8u + k]; }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = sh[0];
    for (var k = 1u; k < 32u; k++) { s += sh[k * 8u]; }
    sh[0] = s;
  }
  workgroupBarrier();
  return sh[0];
}

struct SumParams { n: u32, base: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> sp: SumParams;

@compute @workgroup_size(WG)
fn sumsq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = wid.x * WG + lid; i < sp.n; i += nwg.x * WG) { acc += g[i] * g[i]; }
  let s = tree_sum(acc, lid);
  if (lid == 0u) { partial[sp.base + wid.x] = s; }
}

struct NormParams { count: u32, max_norm: f32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> norm: array<f32>; // [norm, clip scale]
@group(0) @binding(2) var<uniform> np: NormParams;

@compute @workgroup_size(WG)
fn finalize(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < np.count; i += WG) { acc += parts[i]; }
  let total = tree_sum(acc, lid);
  if (lid == 0u) {
    let n = sqrt(total);
    norm[0] = n;
    norm[1] = select(1.0, min(1.0, np.max_norm / (n + 1e-6)), np.max_norm > 0.0);
  }
}

struct AdamParams { n4: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32 }
@group(0) @binding(0) var<storage, read_write> param: array<vec4f>;
@group(0) @binding(1) var<storage, read> grad: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4f>;
@group(0) @binding(4) var<storage, read> clip: array<f32>;
@group(0) @binding(5) var<uniform> ap: AdamParams;

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ap.n4) { return; }
  let gr = grad[i] * clip[1];
  let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * gr;
  let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * gr * gr;
  m[i] = mi;
  v[i] = vi;
  let p = param[i];
  param[i] = p - ap.lr * ((mi / ap.bc1) / (sqrt(vi / ap.bc2) + ap.eps) + ap.wd * p);
}
