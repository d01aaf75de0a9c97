// Softmax and log-softmax over the last axis of a contiguous [rows, n] f32 tensor (after
// ops_rows.wgsl), one workgroup per row. Backward: softmax dx = y·(g − Σ g·y); log-softmax
// dx = g − exp(y)·Σ g.
//
// n % 4 == 0 takes the vec4 kernels: the row is read once into registers (ops_rows.wgsl), its max,
// exp and sum taken there, and written once; the backward keeps y and g of the row in registers
// between its sum and its write. A row longer than one tile (4096) is re-read from cache per pass.
// Other n: the scalar kernels (max, then sum of exp, then write: three reads of the row).

struct Params { rows: u32, n: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
// backward: y, g, dx, params
@group(0) @binding(0) var<storage, read> yb: array<f32>;
@group(0) @binding(1) var<storage, read> gb: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

// Returns (max, sum of exp(x - max)) of row `row` of x. The running max starts at -inf, not at a
// large finite value: a row masked with the most negative f32 (torch.finfo.min) must come out
// uniform, not NaN.
fn row_stats(row: u32, n: u32, lid: u32) -> vec2f {
  let base = row * n;
  var m = neg_inf(lid);
  for (var i = lid; i < n; i += WG) { m = max(m, x[base + i]); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < n; i += WG) { s += exp(x[base + i] - m); }
  return vec2f(m, wg_sum(s, lid));
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
  d = wg_sum(d, lid);
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
  s = wg_sum(s, lid);
  for (var i = lid; i < pb.n; i += WG) { dx[base + i] = gb[base + i] - exp(yb[base + i]) * s; }
}

// ---- vec4 kernels (n % 4 == 0) ----
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4f>;

// Forward of either kind (LOG: log-softmax): max, Σ exp(x − max), write.
fn fwd4(row: u32, lid: u32, log_softmax: bool) {
  let n4 = p.n / 4u;
  let base = row * n4;
  let nt = tiles(n4);
  var a: array<vec4f, KMAX>;
  var m = vec4f(neg_inf(lid));
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      a[j] = vec4f(neg_inf(lid));
      if (q < n4) { a[j] = x4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { m = max(m, a[j]); }
  }
  let mx = wg_max(hmax(m), lid);
  var s = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < n4) {
        if (nt > 1u) { a[j] = x4[base + q]; }
        s += hsum(exp(a[j] - mx));
      }
    }
  }
  s = wg_sum(s, lid);
  let inv = 1.0 / s;
  let ls = log(s);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < n4) {
        if (nt > 1u) { a[j] = x4[base + q]; }
        // (x - max) - log Σ: see logsoftmax_fwd
        y4[base + q] = select(exp(a[j] - mx) * inv, (a[j] - mx) - ls, log_softmax);
      }
    }
  }
}

@compute @workgroup_size(WG)
fn softmax_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  fwd4(row, lid, false);
}

@compute @workgroup_size(WG)
fn logsoftmax_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  fwd4(row, lid, true);
}

@group(0) @binding(0) var<storage, read> yb4: array<vec4f>;
@group(0) @binding(1) var<storage, read> gb4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4f>;

// Backward of either kind: Σ g·y (softmax) or Σ g (log-softmax), then the write.
fn bwd4(row: u32, lid: u32, log_softmax: bool) {
  let n4 = pb.n / 4u;
  let base = row * n4;
  let nt = tiles(n4);
  var yv: array<vec4f, KMAX>;
  var gv: array<vec4f, KMAX>;
  var d = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      yv[j] = vec4f(0.0);
      gv[j] = vec4f(0.0);
      if (q < n4) { yv[j] = yb4[base + q]; gv[j] = gb4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { d += select(dot(gv[j], yv[j]), hsum(gv[j]), log_softmax); }
  }
  d = wg_sum(d, lid);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < n4) {
        if (nt > 1u) { yv[j] = yb4[base + q]; gv[j] = gb4[base + q]; }
        dx4[base + q] = select(yv[j] * (gv[j] - d), gv[j] - exp(yv[j]) * d, log_softmax);
      }
    }
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  bwd4(row, lid, false);
}

@compute @workgroup_size(WG)
fn logsoftmax_bwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  bwd4(row, lid, true);
}
