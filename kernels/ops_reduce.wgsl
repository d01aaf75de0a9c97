// Sum (times `scale`) or max over any set of axes of a strided f32 tensor: one workgroup per
// (output element, part of the reduced index space), its threads striding over that part, then a
// tree in workgroup memory; out[o·parts + part]. A long reduction is cut into parts of `part_len`
// and the host reduces the [out, parts] partials again: a thread then never loops more than
// part_len / 256 times (llvmpipe stops every loop of an invocation after 65,535 iterations in all,
// silently; a GPU gets more than one workgroup per output). Fixed order: deterministic.
//
// `main` is the general strided path (a div/mod walk over the reduced rank per element). `rows`
// and `rows4` are the fast path for a reduction over trailing axes that are contiguous among
// themselves (sum(x, -1) of a row-major tensor, a column slice of one): element r of output o is
// at base(o) + r, so a thread issues four independent loads per trip (four vec4 = 64 bytes in
// `rows4`) before it uses any: a GPU needs that many bytes in flight per thread to reach its
// memory bandwidth, where one dependent scalar load per trip leaves it waiting on latency.
const WG: u32 = 256u;
override OP: u32 = 0u; // 0 sum, 1 max

struct Params {
  out_count: u32, kept_rank: u32, red_rank: u32, red_count: u32, in_off: u32, scale: f32, part_len: u32, init: f32, // init: 0 for sum, -inf for max
  kshape: array<vec4u, 2>, kstr: array<vec4u, 2>, rshape: array<vec4u, 2>, rstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> sh: array<f32, WG>;

fn isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; } // `x != x` may fold

fn combine(a: f32, b: f32) -> f32 {
  if (OP == 0u) { return a + b; }
  return select(max(a, b), a + b, isnan(a) || isnan(b)); // NaN propagates
}

fn combine4(a: vec4f, b: vec4f) -> vec4f {
  return vec4f(combine(a.x, b.x), combine(a.y, b.y), combine(a.z, b.z), combine(a.w, b.w));
}

// Element offset of the first element of output `o`: the kept axes walked once per workgroup.
fn kept_base(o: u32) -> u32 {
  var rem = o;
  var base = p.in_off;
  for (var k = i32(p.kept_rank) - 1; k >= 0; k--) {
    let n = p.kshape[u32(k) / 4u][u32(k) % 4u];
    base += (rem % n) * p.kstr[u32(k) / 4u][u32(k) % 4u];
    rem = rem / n;
  }
  return base;
}

// 256 → 32 partials of 8 → 1: three barriers instead of a log2(256)-deep tree; thread 0 writes.
fn finish(acc: f32, lid: u32, wg: u32) {
  sh[lid] = acc;
  workgroupBarrier();
  if (lid < 32u) {
    var t = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) { t = combine(t, sh[lid * 8u + k]); }
    sh[lid * 8u] = t;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var t = sh[0];
    for (var k = 1u; k < 32u; k++) { t = combine(t, sh[k * 8u]); }
    out[wg] = select(t, t * p.scale, OP == 0u);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let parts = max(1u, (p.red_count + p.part_len - 1u) / p.part_len);
  let o = wg / parts;
  let part = wg % parts;
  if (o >= p.out_count) { return; }
  let base = kept_base(o);
  var acc = p.init;
  let r_end = min(p.red_count, (part + 1u) * p.part_len);
  for (var r = part * p.part_len + lid; r < r_end; r += WG) {
    var rr = r;
    var off = base;
    for (var k = i32(p.red_rank) - 1; k >= 0; k--) {
      let n = p.rshape[u32(k) / 4u][u32(k) % 4u];
      off += (rr % n) * p.rstr[u32(k) / 4u][u32(k) % 4u];
      rr = rr / n;
    }
    acc = combine(acc, x[off]);
  }
  finish(acc, lid, wg);
}

// Contiguous rows, scalar loads (row length or start not a multiple of 4): four in flight.
@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let parts = max(1u, (p.red_count + p.part_len - 1u) / p.part_len);
  let o = wg / parts;
  let part = wg % parts;
  if (o >= p.out_count) { return; }
  let base = kept_base(o);
  let end = min(p.red_count, (part + 1u) * p.part_len);
  var a0 = p.init;
  var a1 = p.init;
  var a2 = p.init;
  var a3 = p.init;
  var r = part * p.part_len + lid;
  for (; r + 3u * WG < end; r += 4u * WG) {
    let v0 = x[base + r];
    let v1 = x[base + r + WG];
    let v2 = x[base + r + 2u * WG];
    let v3 = x[base + r + 3u * WG];
    a0 = combine(a0, v0);
    a1 = combine(a1, v1);
    a2 = combine(a2, v2);
    a3 = combine(a3, v3);
  }
  for (; r < end; r += WG) { a0 = combine(a0, x[base + r]); }
  finish(combine(combine(a0, a1), combine(a2, a3)), lid, wg);
}

// Contiguous rows of a multiple of 4 starting on a multiple of 4 (part_len is one too): vec4 loads.
@group(0) @binding(0) var<storage, read> x4: array<vec4f>;

@compute @workgroup_size(WG)
fn rows4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let parts = max(1u, (p.red_count + p.part_len - 1u) / p.part_len);
  let o = wg / parts;
  let part = wg % parts;
  if (o >= p.out_count) { return; }
  let base = kept_base(o) / 4u;
  let end = min(p.red_count, (part + 1u) * p.part_len) / 4u;
  var a0 = vec4f(p.init);
  var a1 = a0;
  var a2 = a0;
  var a3 = a0;
  var r = part * (p.part_len / 4u) + lid;
  for (; r + 3u * WG < end; r += 4u * WG) {
    let v0 = x4[base + r];
    let v1 = x4[base + r + WG];
    let v2 = x4[base + r + 2u * WG];
    let v3 = x4[base + r + 3u * WG];
    a0 = combine4(a0, v0);
    a1 = combine4(a1, v1);
    a2 = combine4(a2, v2);
    a3 = combine4(a3, v3);
  }
  for (; r < end; r += WG) { a0 = combine4(a0, x4[base + r]); }
  let a = combine4(combine4(a0, a1), combine4(a2, a3));
  finish(combine(combine(a.x, a.y), combine(a.z, a.w)), lid, wg);
}

// Column sums of a contiguous [rows, cols] tensor (a reduction over leading axes, e.g. a bias
// gradient): a workgroup owns a strip of columns and a chunk of rows; its threads are laid out as
// (column, row lane) so each row segment is one coalesced read, and a thread sums every RL-th row
// of the chunk four rows at a time (four independent loads in flight), then the lanes are folded
// in workgroup memory in lane order. out[chunk, col] = scale · Σ rows of the chunk; the caller
// folds the chunks again (fixed order throughout: deterministic). With ACCUMULATE the sum is added
// to `out` instead (a parameter's `.grad`, which the last fold then updates in place).
override ACCUMULATE: bool = false;
struct ColParams { rows: u32, cols: u32, chunk: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> cx: array<f32>;
@group(0) @binding(1) var<storage, read_write> cout: array<f32>;
@group(0) @binding(2) var<uniform> cp: ColParams;

const CW: u32 = 64u; // scalar columns per workgroup (a warp reads 128 contiguous bytes per row)
const RL: u32 = WG / CW;

@compute @workgroup_size(WG)
fn colsum(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = wid.x * CW + lid % CW;
  let lane = lid / CW;
  let end = min(cp.rows, (wid.y + 1u) * cp.chunk);
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  if (col < cp.cols) {
    var r = wid.y * cp.chunk + lane;
    for (; r + 3u * RL < end; r += 4u * RL) {
      let v0 = cx[r * cp.cols + col];
      let v1 = cx[(r + RL) * cp.cols + col];
      let v2 = cx[(r + 2u * RL) * cp.cols + col];
      let v3 = cx[(r + 3u * RL) * cp.cols + col];
      a0 += v0;
      a1 += v1;
      a2 += v2;
      a3 += v3;
    }
    for (; r < end; r += RL) { a0 += cx[r * cp.cols + col]; }
  }
  sh[lid] = (a0 + a1) + (a2 + a3);
  workgroupBarrier();
  if (lane == 0u && col < cp.cols) {
    var s = sh[lid];
    for (var k = 1u; k < RL; k++) { s += sh[k * CW + lid]; }
    let o = wid.y * cp.cols + col;
    if (ACCUMULATE) { cout[o] = cout[o] + s * cp.scale; } else { cout[o] = s * cp.scale; }
  }
}

// The same for cols % 4 == 0 with vec4 loads: 16 vec4 columns (256 bytes of a row) × 16 lanes.
@group(0) @binding(0) var<storage, read> cx4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> cout4: array<vec4f>;
var<workgroup> sh4: array<vec4f, WG>;
const CW4: u32 = 16u;
const RL4: u32 = WG / CW4;

@compute @workgroup_size(WG)
fn colsum4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c4 = cp.cols / 4u;
  let col = wid.x * CW4 + lid % CW4;
  let lane = lid / CW4;
  let end = min(cp.rows, (wid.y + 1u) * cp.chunk);
  var a0 = vec4f(0.0);
  var a1 = a0;
  var a2 = a0;
  var a3 = a0;
  if (col < c4) {
    var r = wid.y * cp.chunk + lane;
    for (; r + 3u * RL4 < end; r += 4u * RL4) {
      let v0 = cx4[r * c4 + col];
      let v1 = cx4[(r + RL4) * c4 + col];
      let v2 = cx4[(r + 2u * RL4) * c4 + col];
      let v3 = cx4[(r + 3u * RL4) * c4 + col];
      a0 += v0;
      a1 += v1;
      a2 += v2;
      a3 += v3;
    }
    for (; r < end; r += RL4) { a0 += cx4[r * c4 + col]; }
  }
  sh4[lid] = (a0 + a1) + (a2 + a3);
  workgroupBarrier();
  if (lane == 0u && col < c4) {
    var s = sh4[lid];
    for (var k = 1u; k < RL4; k++) { s += sh4[k * CW4 + lid]; }
    let o = wid.y * c4 + col;
    if (ACCUMULATE) { cout4[o] = cout4[o] + s * cp.scale; } else { cout4[o] = s * cp.scale; }
  }
}
