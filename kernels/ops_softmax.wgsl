// Softmax and log-softmax over the last axis of a contiguous [rows, n] f32 tensor, one workgroup
// per row (max, then sum of exp, then write: three reads of the row, which stays in cache).
// Backward: softmax dx = y·(g − Σ g·y); log-softmax dx = g − exp(y)·Σ g.
const WG: u32 = 256u;

struct Params { rows: u32, n: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
// backward: y, g, dx, params
@group(0) @binding(0) var<storage, read> yb: array<f32>;
@group(0) @binding(1) var<storage, read> gb: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

var<workgroup> sh: array<f32, WG>;

// Workgroup max/sum in three barriers (256 → 32 partials of 8 → 1), see ops_norm.wgsl.
fn reduce_max(v: f32, lid: u32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 32u) {
    var s = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) { s = max(s, sh[lid * 8u + k]); }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = sh[0];
    for (var k = 1u; k < 32u; k++) { s = max(s, sh[k * 8u]); }
    sh[0] = s;
  }
  workgroupBarrier();
  let r = sh[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(v: f32, lid: u32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 32u) {
    var s = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) { s = s + sh[lid * 8u + k]; }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = sh[0];
    for (var k = 1u; k < 32u; k++) { s = s + sh[k * 8u]; }
    sh[0] = s;
  }
  workgroupBarrier();
  let r = sh[0];
  workgroupBarrier();
  return r;
}

// -inf as a runtime value (a constant infinity is a shader-creation error in WGSL). The running
// max starts there, not at a large finite value: a row masked with the most negative f32
// (torch.finfo.min) must come out uniform, not NaN.
fn neg_inf(lid: u32) -> f32 { return bitcast<f32>(0xff800000u | (lid & 0u)); }

// Returns (max, sum of exp(x - max)) of row `row` of x.
fn row_stats(row: u32, n: u32, lid: u32) -> vec2f {
  let base = row * n;
  var m = neg_inf(lid);
  for (var i = lid; i < n; i += WG) { m = max(m, x[base + i]); }
  m = reduce_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < n; i += WG) { s += exp(x[base + i] - m); }
  return vec2f(m, reduce_sum(s, lid));
}

@compute @workgroup_size(WG)
fn softmax_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let st = row_stats(row, p.n, lid);
  let inv = 1.0 / st.y;
  for (var i = lid; i < p.n; i += WG) { y[row * p.n + i] = exp(x[row * p.n + i] - st.x) * inv; }
}

@compute @workgroup_size(WG)
fn logsoftmax_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let st = row_stats(row, p.n, lid);
  // (x - max) - log Σ, not x - (max + log Σ): near -3.4e38 the sum would absorb log Σ
  let ls = log(st.y);
  for (var i = lid; i < p.n; i += WG) { y[row * p.n + i] = (x[row * p.n + i] - st.x) - ls; }
}

@compute @workgroup_size(WG)
fn softmax_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let base = row * pb.n;
  var d = 0.0;
  for (var i = lid; i < pb.n; i += WG) { d += gb[base + i] * yb[base + i]; }
  d = reduce_sum(d, lid);
  for (var i = lid; i < pb.n; i += WG) { dx[base + i] = yb[base + i] * (gb[base + i] - d); }
}

@compute @workgroup_size(WG)
fn logsoftmax_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let base = row * pb.n;
  var s = 0.0;
  for (var i = lid; i < pb.n; i += WG) { s += gb[base + i]; }
  s = reduce_sum(s, lid);
  for (var i = lid; i < pb.n; i += WG) { dx[base + i] = gb[base + i] - exp(yb[base + i]) * s; }
}

// vec4 variants of the forward for n % 4 == 0.
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4f>;

fn row_stats4(row: u32, n4: u32, lid: u32) -> vec2f {
  let base = row * n4;
  var m = vec4f(neg_inf(lid));
  for (var i = lid; i < n4; i += WG) { m = max(m, x4[base + i]); }
  let mx = reduce_max(max(max(m.x, m.y), max(m.z, m.w)), lid);
  var s = 0.0;
  for (var i = lid; i < n4; i += WG) { let e = exp(x4[base + i] - mx); s += e.x + e.y + e.z + e.w; }
  return vec2f(mx, reduce_sum(s, lid));
}

@compute @workgroup_size(WG)
fn softmax_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let n4 = p.n / 4u;
  let st = row_stats4(row, n4, lid);
  let inv = 1.0 / st.y;
  for (var i = lid; i < n4; i += WG) { y4[row * n4 + i] = exp(x4[row * n4 + i] - st.x) * inv; }
}

@compute @workgroup_size(WG)
fn logsoftmax_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let n4 = p.n / 4u;
  let st = row_stats4(row, n4, lid);
  let ls = log(st.y);
  for (var i = lid; i < n4; i += WG) { y4[row * n4 + i] = (x4[row * n4 + i] - st.x) - ls; }
}
