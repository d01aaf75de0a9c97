// RMSNorm and LayerNorm over the last axis of contiguous [rows, C] f32, one workgroup per row,
// saving the per-row statistics for the backward. The weight/bias gradients are column sums over
// rows computed by one thread per column in row order (deterministic, no atomics).
const WG: u32 = 256u;

struct Params { rows: u32, c: u32, eps: f32, chunk: u32 } // chunk: rows per partial column sum

var<workgroup> sh: array<f32, WG>;

// Workgroup sum in three barriers (256 → 32 partials of 8 → 1) rather than a log2(256)-deep tree:
// barriers dominate row kernels on CPU adapters and the serial tails are short on GPUs.
fn reduce_sum(v: f32, lid: u32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 32u) {
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) { s += sh[lid * 8u + k]; }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = 0.0;
    for (var k = 0u; k < 32u; k++) { s += sh[k * 8u]; }
    sh[0] = s;
  }
  workgroupBarrier();
  let r = sh[0];
  workgroupBarrier();
  return r;
}

// forward: x, weight, [bias,] y, stats (rstd for RMS; mean and rstd interleaved for LayerNorm)
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn rms_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.c;
  var ss = 0.0;
  for (var i = lid; i < p.c; i += WG) { let v = x[base + i]; ss += v * v; }
  ss = reduce_sum(ss, lid);
  let r = inverseSqrt(ss / f32(p.c) + p.eps);
  for (var i = lid; i < p.c; i += WG) { y[base + i] = x[base + i] * r * w[i]; }
  if (lid == 0u) { stats[row] = r; }
}

@group(0) @binding(4) var<storage, read> lbias: array<f32>;
@group(0) @binding(5) var<uniform> pl: Params;

@compute @workgroup_size(WG)
fn ln_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pl.rows) { return; }
  let base = row * pl.c;
  var s = 0.0;
  for (var i = lid; i < pl.c; i += WG) { s += x[base + i]; }
  let mean = reduce_sum(s, lid) / f32(pl.c);
  var ss = 0.0;
  for (var i = lid; i < pl.c; i += WG) { let d = x[base + i] - mean; ss += d * d; }
  let r = inverseSqrt(reduce_sum(ss, lid) / f32(pl.c) + pl.eps);
  for (var i = lid; i < pl.c; i += WG) { y[base + i] = (x[base + i] - mean) * r * w[i] + lbias[i]; }
  if (lid == 0u) { stats[2u * row] = mean; stats[2u * row + 1u] = r; }
}

// backward dx: x, weight, dy, stats, dx, params
@group(0) @binding(0) var<storage, read> bx: array<f32>;
@group(0) @binding(1) var<storage, read> bw: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> bstats: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> pb: Params;

// dx = r·(gy − x·r²·mean(gy·x)), gy = dy·w
@compute @workgroup_size(WG)
fn rms_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let base = row * pb.c;
  let r = bstats[row];
  var d = 0.0;
  for (var i = lid; i < pb.c; i += WG) { d += dy[base + i] * bw[i] * bx[base + i]; }
  let k = reduce_sum(d, lid) * r * r / f32(pb.c);
  for (var i = lid; i < pb.c; i += WG) {
    dx[base + i] = r * (dy[base + i] * bw[i] - bx[base + i] * k);
  }
}

// dx = r·(gy − mean(gy) − xhat·mean(gy·xhat)), xhat = (x − mean)·r
@compute @workgroup_size(WG)
fn ln_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let base = row * pb.c;
  let mean = bstats[2u * row];
  let r = bstats[2u * row + 1u];
  var a = 0.0;
  var b = 0.0;
  for (var i = lid; i < pb.c; i += WG) {
    let gy = dy[base + i] * bw[i];
    a += gy;
    b += gy * (bx[base + i] - mean) * r;
  }
  let ma = reduce_sum(a, lid) / f32(pb.c);
  let mb = reduce_sum(b, lid) / f32(pb.c);
  for (var i = lid; i < pb.c; i += WG) {
    let xhat = (bx[base + i] - mean) * r;
    dx[base + i] = r * (dy[base + i] * bw[i] - ma - xhat * mb);
  }
}

// weight (and bias) gradients: one thread per (column, chunk of rows) writes a partial sum at
// [chunk, column]; the caller sums the partials over chunks (fixed order, no atomics).
// x, dy, stats, dw partials, db partials, params
@group(0) @binding(0) var<storage, read> cx: array<f32>;
@group(0) @binding(1) var<storage, read> cdy: array<f32>;
@group(0) @binding(2) var<storage, read> cstats: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;
@group(0) @binding(5) var<uniform> pc: Params;
@group(0) @binding(4) var<uniform> pc4: Params;

@compute @workgroup_size(WG)
fn rms_dw(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let col = wid.x * WG + lid;
  if (col >= pc4.c) { return; }
  var acc = 0.0;
  let end = min(pc4.rows, (wid.y + 1u) * pc4.chunk);
  for (var row = wid.y * pc4.chunk; row < end; row++) {
    acc += cdy[row * pc4.c + col] * cx[row * pc4.c + col] * cstats[row];
  }
  dw[wid.y * pc4.c + col] = acc;
}

@compute @workgroup_size(WG)
fn ln_dwb(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let col = wid.x * WG + lid;
  if (col >= pc.c) { return; }
  var aw = 0.0;
  var ab = 0.0;
  let end = min(pc.rows, (wid.y + 1u) * pc.chunk);
  for (var row = wid.y * pc.chunk; row < end; row++) {
    let i = row * pc.c + col;
    let g = cdy[i];
    aw += g * (cx[i] - cstats[2u * row]) * cstats[2u * row + 1u];
    ab += g;
  }
  dw[wid.y * pc.c + col] = aw;
  db[wid.y * pc.c + col] = ab;
}

// vec4 variants of the RMSNorm kernels for C % 4 == 0: a quarter of the loads and loop trips.
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read> w4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;

@compute @workgroup_size(WG)
fn rms_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let c4 = p.c / 4u;
  let base = row * c4;
  var ss = 0.0;
  for (var i = lid; i < c4; i += WG) { let v = x4[base + i]; ss += dot(v, v); }
  ss = reduce_sum(ss, lid);
  let r = inverseSqrt(ss / f32(p.c) + p.eps);
  for (var i = lid; i < c4; i += WG) { y4[base + i] = x4[base + i] * r * w4[i]; }
  if (lid == 0u) { stats[row] = r; }
}

@group(0) @binding(0) var<storage, read> bx4: array<vec4f>;
@group(0) @binding(1) var<storage, read> bw4: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn rms_bwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let c4 = pb.c / 4u;
  let base = row * c4;
  let r = bstats[row];
  var d = 0.0;
  for (var i = lid; i < c4; i += WG) { d += dot(dy4[base + i] * bw4[i], bx4[base + i]); }
  let k = reduce_sum(d, lid) * r * r / f32(pb.c);
  for (var i = lid; i < c4; i += WG) {
    dx4[base + i] = r * (dy4[base + i] * bw4[i] - bx4[base + i] * k);
  }
}
