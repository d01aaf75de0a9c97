// AdamW over parameters packed in one arena (src/tensor/arena.ts): one dispatch for the partial
// sums of squares of every gradient, one for the update of every parameter (the clip scale comes
// from optim_adamw.wgsl's `finalize`). Parameters start at multiples of 64 elements, so each
// 64-element chunk belongs to at most one parameter: `chunk_seg` names it, `segs` holds its first
// element, element count and weight decay. Elements outside every parameter (the padding) are
// neither summed nor updated, whatever a vec4 kernel left in them.
const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> sh: array<f32, WG>;

// 256 → 32 partials of 8 → 1 (fixed order, as optim_adamw.wgsl, so the norm is deterministic).
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

struct SumParams { n4: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(2) var<storage, read> g_sum: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;
@group(0) @binding(4) var<uniform> sp: SumParams;

@compute @workgroup_size(WG)
fn sumsq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = wid.x * WG + lid; i < sp.n4; i += nwg.x * WG) {
    let g = select(vec4f(0.0), g_sum[i], lanes(i));
    acc += dot(g, g);
  }
  let s = tree_sum(acc, lid);
  if (lid == 0u) { partial[wid.x] = s; }
}

struct AdamParams { n4: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, bc1: f32, bc2: f32, _a: u32 }
@group(0) @binding(2) var<storage, read_write> param: array<vec4f>;
@group(0) @binding(3) var<storage, read> grad: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> v: array<vec4f>;
@group(0) @binding(6) var<storage, read> clip: array<f32>;
@group(0) @binding(7) var<uniform> ap: AdamParams;

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ap.n4) { return; }
  let c = chunk_seg[i / 16u];
  if (c == NONE) { return; }
  let inside = lanes(i);
  let wd = bitcast<f32>(segs[c].z);
  let gr = grad[i] * clip[1];
  let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * gr;
  let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * gr * gr;
  let p = param[i];
  let updated = p - ap.lr * ((mi / ap.bc1) / (sqrt(vi / ap.bc2) + ap.eps) + wd * p);
  m[i] = select(m[i], mi, inside);
  v[i] = select(v[i], vi, inside);
  param[i] = select(p, updated, inside);
}
