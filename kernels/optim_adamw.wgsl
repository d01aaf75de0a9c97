// The optimizer's kernels: global gradient norm in two fixed-order stages (per-parameter partial
// sums of squares, then one workgroup for the total and the clip scale), and the AdamW update
// (decoupled weight decay, bias correction) reading that scale from the GPU, so nothing is read back.
// Per parameter tensor (`sumsq`, `adamw`), or over parameters packed in one arena (`sumsq_packed`,
// `adamw_packed`, at the end); both forms share `tree_sum` and `finalize`.
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

// Parameters packed in one arena (src/tensor/arena.ts; src/autograd/optim_packed.ts): one
// dispatch of `sumsq_packed` for the partial sums of squares of every gradient, `finalize` above
// for the norm and clip scale, one dispatch of `adamw_packed` for every parameter. Parameters
// start at multiples of 64 elements, so each 64-element chunk belongs to at most one parameter:
// `chunk_seg` names it, `segs` holds its first element, element count and weight decay. Elements
// outside every parameter (the padding) are neither summed nor updated, whatever a vec4 kernel
// left in them.
const NONE: u32 = 0xffffffffu;

// x: first element, y: element count, z: weight decay (f32 bits), w: 1 when the parameter has a
// gradient this step (one without is skipped, as PyTorch skips it).
@group(0) @binding(0) var<storage, read> segs: array<vec4u>;
@group(0) @binding(1) var<storage, read> chunk_seg: array<u32>;

// The segment of vec4 group i4 (NONE for padding) and which of its four lanes lie inside it.
fn lanes(i4: u32) -> vec4<bool> {
  let c = chunk_seg[i4 / 16u];
  if (c == NONE) { return vec4<bool>(false); }
  let s = segs[c];
  let e = vec4u(i4 * 4u) + vec4u(0u, 1u, 2u, 3u);
  return (e >= vec4u(s.x)) & (e < vec4u(s.x + s.y)) & vec4<bool>(s.w != 0u);
}

struct PackedSumParams { n4: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(2) var<storage, read> g_sum: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> partial_packed: array<f32>;
@group(0) @binding(4) var<uniform> psp: PackedSumParams;

@compute @workgroup_size(WG)
fn sumsq_packed(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = wid.x * WG + lid; i < psp.n4; i += nwg.x * WG) {
    let g = select(vec4f(0.0), g_sum[i], lanes(i));
    acc += dot(g, g);
  }
  let s = tree_sum(acc, lid);
  if (lid == 0u) { partial_packed[wid.x] = s; }
}

struct PackedAdamParams { n4: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, bc1: f32, bc2: f32, _a: u32 }
@group(0) @binding(2) var<storage, read_write> param_packed: array<vec4f>;
@group(0) @binding(3) var<storage, read> grad_packed: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> m_packed: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> v_packed: array<vec4f>;
@group(0) @binding(6) var<storage, read> clip_packed: array<f32>;
@group(0) @binding(7) var<uniform> pap: PackedAdamParams;

@compute @workgroup_size(WG)
fn adamw_packed(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pap.n4) { return; }
  let c = chunk_seg[i / 16u];
  if (c == NONE) { return; }
  let inside = lanes(i);
  let wd = bitcast<f32>(segs[c].z);
  let gr = grad_packed[i] * clip_packed[1];
  let mi = pap.beta1 * m_packed[i] + (1.0 - pap.beta1) * gr;
  let vi = pap.beta2 * v_packed[i] + (1.0 - pap.beta2) * gr * gr;
  let p = param_packed[i];
  let updated = p - pap.lr * ((mi / pap.bc1) / (sqrt(vi / pap.bc2) + pap.eps) + wd * p);
  m_packed[i] = select(m_packed[i], mi, inside);
  v_packed[i] = select(v_packed[i], vi, inside);
  param_packed[i] = select(p, updated, inside);
}
