// Sum (times `scale`) or max over any set of axes of a strided f32 tensor: one workgroup per
// (output element, part of the reduced index space), its threads striding over that part, then a
// tree in workgroup memory; out[o·parts + part]. A long reduction is cut into parts of `part_len`
// and the host reduces the [out, parts] partials again: a thread then never loops more than
// part_len / 256 times (llvmpipe stops every loop of an invocation after 65,535 iterations in all,
// silently; a GPU gets more than one workgroup per output). Fixed order: deterministic.
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  let parts = max(1u, (p.red_count + p.part_len - 1u) / p.part_len);
  let o = wg / parts;
  let part = wg % parts;
  if (o >= p.out_count) { return; }
  var rem = o;
  var base = p.in_off;
  for (var k = i32(p.kept_rank) - 1; k >= 0; k--) {
    let n = p.kshape[u32(k) / 4u][u32(k) % 4u];
    base += (rem % n) * p.kstr[u32(k) / 4u][u32(k) % 4u];
    rem = rem / n;
  }
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
  // 256 → 32 partials of 8 → 1: three barriers instead of a log2(256)-deep tree
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

// Column sums of a contiguous [rows, cols] tensor (a reduction over leading axes, e.g. a bias
// gradient): one thread per (column, chunk of rows), so neighbouring threads read neighbouring
// addresses; out[chunk, col] = scale · Σ rows of the chunk. The caller folds the chunks.
struct ColParams { rows: u32, cols: u32, chunk: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> cx: array<f32>;
@group(0) @binding(1) var<storage, read_write> cout: array<f32>;
@group(0) @binding(2) var<uniform> cp: ColParams;

@compute @workgroup_size(WG)
fn colsum(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = wid.x * WG + lid;
  if (col >= cp.cols) { return; }
  let end = min(cp.rows, (wid.y + 1u) * cp.chunk);
  var acc = 0.0;
  for (var r = wid.y * cp.chunk; r < end; r++) { acc += cx[r * cp.cols + col]; }
  cout[wid.y * cp.cols + col] = acc * cp.scale;
}
