// RMSNorm and LayerNorm over the last axis of contiguous [rows, C] f32 (after ops_rows.wgsl), one
// workgroup per row, saving the per-row statistics for the backward.
//
// C % 4 == 0 takes the vec4 kernels at the end: the forward reads the row once into registers
// (ops_rows.wgsl) and writes it once. For C ≤ 4096 the backward is one fused kernel per block of
// `chunk` rows: each thread keeps its columns of the weight and of the weight (and bias) gradient
// in registers, walks the block's rows (RMSNorm loads the next row's dy and x before the current
// row's barriers, so memory stays busy), writes dx and, at the end, one partial row of dw (db) per
// block, which the caller folds with a column sum: x and dy are read once, where a separate
// gradient kernel read them again. C % 4 == 0 past 4096: rms_bwd4 / ln_bwd for dx, then the
// scalar gradient kernels. Other C: the scalar kernels, with the weight gradients as column sums
// by one thread per column in row order (deterministic, no atomics).
struct Params { rows: u32, c: u32, eps: f32, chunk: u32 } // chunk: rows per partial column sum

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
  ss = wg_sum(ss, lid);
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
  let mean = wg_sum(s, lid) / f32(pl.c);
  var ss = 0.0;
  for (var i = lid; i < pl.c; i += WG) { let d = x[base + i] - mean; ss += d * d; }
  let r = inverseSqrt(wg_sum(ss, lid) / f32(pl.c) + pl.eps);
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
  let k = wg_sum(d, lid) * r * r / f32(pb.c);
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
  let ma = wg_sum(a, lid) / f32(pb.c);
  let mb = wg_sum(b, lid) / f32(pb.c);
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


// ---- vec4 kernels (C % 4 == 0) ----
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;
@group(0) @binding(1) var<storage, read> w4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(4) var<storage, read> b4: array<vec4f>;

@compute @workgroup_size(WG)
fn rms_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let c4 = p.c / 4u;
  let base = row * c4;
  let nt = tiles(c4);
  var a: array<vec4f, KMAX>;
  var ss = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      a[j] = vec4f(0.0);
      if (q < c4) { a[j] = x4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { ss += dot(a[j], a[j]); }
  }
  let r = inverseSqrt(wg_sum(ss, lid) / f32(p.c) + p.eps);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        var v = a[j];
        if (nt > 1u) { v = x4[base + q]; }
        y4[base + q] = v * r * w4[q];
      }
    }
  }
  if (lid == 0u) { stats[row] = r; }
}

// Residual add fused with RMSNorm (a transformer block's `x = x + branch; h = rmsNorm(x)`): one
// read of each operand, the sum written once for the residual stream and normalised from the
// registers. Bindings as rms_fwd4, plus the branch and the sum.
@group(0) @binding(5) var<storage, read> r4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> s4: array<vec4f>;

@compute @workgroup_size(WG)
fn add_rms_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let c4 = p.c / 4u;
  let base = row * c4;
  let nt = tiles(c4);
  var a: array<vec4f, KMAX>;
  var ss = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      a[j] = vec4f(0.0);
      if (q < c4) { a[j] = x4[base + q] + r4[base + q]; }
    }
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) { s4[base + q] = a[j]; }
      ss += dot(a[j], a[j]);
    }
  }
  let r = inverseSqrt(wg_sum(ss, lid) / f32(p.c) + p.eps);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        var v = a[j];
        if (nt > 1u) { v = s4[base + q]; }
        y4[base + q] = v * r * w4[q];
      }
    }
  }
  if (lid == 0u) { stats[row] = r; }
}

@compute @workgroup_size(WG)
fn ln_fwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pl.rows) { return; }
  let c4 = pl.c / 4u;
  let base = row * c4;
  let nt = tiles(c4);
  var a: array<vec4f, KMAX>;
  var s = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      a[j] = vec4f(0.0);
      if (q < c4) { a[j] = x4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { s += hsum(a[j]); }
  }
  let mean = wg_sum(s, lid) / f32(pl.c);
  // Σ (x − mean)² after the mean (not Σx² − mean²): no cancellation for rows far from 0
  var ss = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        if (nt > 1u) { a[j] = x4[base + q]; }
        let d = a[j] - mean;
        ss += dot(d, d);
      }
    }
  }
  let r = inverseSqrt(wg_sum(ss, lid) / f32(pl.c) + pl.eps);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        if (nt > 1u) { a[j] = x4[base + q]; }
        y4[base + q] = (a[j] - mean) * r * w4[q] + b4[q];
      }
    }
  }
  if (lid == 0u) { stats[2u * row] = mean; stats[2u * row + 1u] = r; }
}

// backward: x, weight, dy, stats, dx, params, dw partials [blocks, C], db partials [blocks, C]
@group(0) @binding(0) var<storage, read> bx4: array<vec4f>;
@group(0) @binding(1) var<storage, read> bw4: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dx4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dwp4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dbp4: array<vec4f>;

// dx of RMSNorm for any C % 4 == 0 (rows longer than a tile re-read it for the write); the weight
// gradient then comes from rms_dw.
@compute @workgroup_size(WG)
fn rms_bwd4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= pb.rows) { return; }
  let c4 = pb.c / 4u;
  let base = row * c4;
  let nt = tiles(c4);
  let r = bstats[row];
  var g: array<vec4f, KMAX>;
  var xv: array<vec4f, KMAX>;
  var d = 0.0;
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      g[j] = vec4f(0.0);
      xv[j] = vec4f(0.0);
      if (q < c4) { g[j] = dy4[base + q] * bw4[q]; xv[j] = bx4[base + q]; }
    }
    for (var j = 0u; j < K; j++) { d += dot(g[j], xv[j]); }
  }
  let k = wg_sum(d, lid) * r * r / f32(pb.c);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        if (nt > 1u) { g[j] = dy4[base + q] * bw4[q]; xv[j] = bx4[base + q]; }
        dx4[base + q] = r * (g[j] - xv[j] * k);
      }
    }
  }
}

// ADDEND: dx also adds the gradient that other consumers of x already gave it (binding 7, read
// once here), so the tape needs no separate add (src/autograd/tape.ts `takePendingGrad`); off, the
// binding is a dummy the kernel never reads.
override ADDEND: bool = false;
@group(0) @binding(7) var<storage, read> ga4: array<vec4f>;

// RMSNorm dx and the block's partial dw in one pass, C ≤ 4·WG·K: dx = r·(gy − x·r²·mean(gy·x)),
// gy = dy·w; dw += dy·x·r.
@compute @workgroup_size(WG)
fn rms_bwd_dw4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let blk = wid.x + wid.y * nwg.x;
  let r0 = blk * pb.chunk;
  if (r0 >= pb.rows) { return; }
  let r1 = min(pb.rows, r0 + pb.chunk);
  let c4 = pb.c / 4u;
  var wv: array<vec4f, KMAX>;
  var acc: array<vec4f, KMAX>;
  var dv: array<vec4f, KMAX>; // this row's dy and x
  var xv: array<vec4f, KMAX>;
  var nd: array<vec4f, KMAX>; // the next row's
  var nx: array<vec4f, KMAX>;
  for (var j = 0u; j < K; j++) {
    let q = j * WG + lid;
    wv[j] = vec4f(0.0);
    acc[j] = vec4f(0.0);
    dv[j] = vec4f(0.0);
    xv[j] = vec4f(0.0);
    nd[j] = vec4f(0.0);
    nx[j] = vec4f(0.0);
    if (q < c4) { wv[j] = bw4[q]; dv[j] = dy4[r0 * c4 + q]; xv[j] = bx4[r0 * c4 + q]; }
  }
  var r = bstats[r0];
  var nr = r;
  for (var row = r0; row < r1; row++) {
    var d = 0.0;
    for (var j = 0u; j < K; j++) { d += dot(dv[j] * wv[j], xv[j]); }
    if (row + 1u < r1) {
      nr = bstats[row + 1u];
      for (var j = 0u; j < K; j++) {
        let q = j * WG + lid;
        if (q < c4) { nd[j] = dy4[(row + 1u) * c4 + q]; nx[j] = bx4[(row + 1u) * c4 + q]; }
      }
    }
    let k = wg_sum(d, lid) * r * r / f32(pb.c);
    for (var j = 0u; j < K; j++) {
      let q = j * WG + lid;
      if (q < c4) {
        var g = r * (dv[j] * wv[j] - xv[j] * k);
        if (ADDEND) { g += ga4[row * c4 + q]; }
        dx4[row * c4 + q] = g;
      }
      acc[j] += dv[j] * xv[j] * r;
      dv[j] = nd[j];
      xv[j] = nx[j];
    }
    r = nr;
  }
  for (var j = 0u; j < K; j++) {
    let q = j * WG + lid;
    if (q < c4) { dwp4[blk * c4 + q] = acc[j]; }
  }
}

// LayerNorm dx and the block's partial dw, db in one pass, C ≤ 4·WG·K:
// dx = r·(gy − mean(gy) − xhat·mean(gy·xhat)), xhat = (x − mean)·r; dw += dy·xhat; db += dy.
@compute @workgroup_size(WG)
fn ln_bwd_dwb4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let blk = wid.x + wid.y * nwg.x;
  let r0 = blk * pb.chunk;
  if (r0 >= pb.rows) { return; }
  let r1 = min(pb.rows, r0 + pb.chunk);
  let c4 = pb.c / 4u;
  var wv: array<vec4f, KMAX>;
  var aw: array<vec4f, KMAX>;
  var ab: array<vec4f, KMAX>;
  var dv: array<vec4f, KMAX>;
  var xh: array<vec4f, KMAX>;
  for (var j = 0u; j < K; j++) {
    let q = j * WG + lid;
    wv[j] = vec4f(0.0);
    aw[j] = vec4f(0.0);
    ab[j] = vec4f(0.0);
    dv[j] = vec4f(0.0);
    xh[j] = vec4f(0.0);
    if (q < c4) { wv[j] = bw4[q]; }
  }
  for (var row = r0; row < r1; row++) {
    let mean = bstats[2u * row];
    let r = bstats[2u * row + 1u];
    for (var j = 0u; j < K; j++) {
      let q = j * WG + lid;
      if (q < c4) { dv[j] = dy4[row * c4 + q]; xh[j] = bx4[row * c4 + q]; }
    }
    var a = 0.0;
    var b = 0.0;
    for (var j = 0u; j < K; j++) {
      // lanes past C stay 0 (an unloaded lane would otherwise drift to inf over the rows)
      xh[j] = select(vec4f(0.0), (xh[j] - mean) * r, j * WG + lid < c4);
      let gy = dv[j] * wv[j];
      a += hsum(gy);
      b += dot(gy, xh[j]);
    }
    let m = wg_reduce(vec4f(a, b, 0.0, 0.0), lid, false).xy / f32(pb.c);
    for (var j = 0u; j < K; j++) {
      let q = j * WG + lid;
      if (q < c4) {
        dx4[row * c4 + q] = r * (dv[j] * wv[j] - m.x - xh[j] * m.y);
        aw[j] += dv[j] * xh[j];
        ab[j] += dv[j];
      }
    }
  }
  for (var j = 0u; j < K; j++) {
    let q = j * WG + lid;
    if (q < c4) { dwp4[blk * c4 + q] = aw[j]; dbp4[blk * c4 + q] = ab[j]; }
  }
}
