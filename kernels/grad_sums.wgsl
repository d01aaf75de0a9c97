// Deferred gradient sums: every weight gradient of a backward pass that arrives as per-block
// partial rows (a norm's [blocks, C] partials, a split-K weight gradient's [splits, M·N]) is
// column-summed into its `.grad` by this one dispatch at the end of the pass, where each had cost
// a reduction dispatch of its own.
//
// The segment table lists, per segment, where its partials start in `parts`, how many rows
// (blocks) of how many columns it has, and where its gradient starts in `dst`; `dst[j] += Σ_b
// parts[b, j]`. Work is cut into strips of 64 columns; a workgroup takes one strip of one segment,
// found by binary search over the segments' first strips (the table is at most MAX_SEG long).
// Rows are summed in a fixed order, so the result is deterministic.
//
// `sum4` reads vec4s (every segment's start and width a multiple of 4): 16 column groups × 16 row
// lanes, four rows in flight per lane, as colsum4 in ops_reduce.wgsl. `sum1` is the scalar form
// for any layout: 64 columns × 4 row lanes.
const MAX_SEG: u32 = 256u;
const WG: u32 = 256u;
const STRIP: u32 = 64u; // columns per workgroup, both entry points

struct Table {
  head: vec4u,                          // segments, total strips
  first: array<vec4u, MAX_SEG / 4u>,    // first strip of each segment, packed four per vec4
  segs: array<vec4u, MAX_SEG>,          // (parts offset, blocks, cols, dst offset) in floats
}

@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> table: Table;
// sum4's views of the same buffers (same bindings; an entry point uses one pair)
@group(0) @binding(0) var<storage, read> parts4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dst4: array<vec4f>;

var<workgroup> sh: array<vec4f, WG>;
var<workgroup> sh1: array<f32, WG>;

fn firstStrip(s: u32) -> u32 { return table.first[s / 4u][s % 4u]; }

// The segment holding strip w: the last one whose first strip is <= w.
fn segmentOf(w: u32) -> u32 {
  var lo = 0u;
  var hi = table.head.x - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (firstStrip(mid) <= w) { lo = mid; } else { hi = mid - 1u; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn sum4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= table.head.y) { return; } // uniform per workgroup
  let s = segmentOf(w);
  let seg = table.segs[s];
  let c4 = seg.z / 4u;
  let col = (w - firstStrip(s)) * (STRIP / 4u) + lid % 16u;
  let lane = lid / 16u;
  var a0 = vec4f(0.0);
  var a1 = a0;
  var a2 = a0;
  var a3 = a0;
  if (col < c4) {
    let base = seg.x / 4u + col;
    var r = lane;
    for (; r + 48u < seg.y; r += 64u) {
      let v0 = parts4[base + r * c4];
      let v1 = parts4[base + (r + 16u) * c4];
      let v2 = parts4[base + (r + 32u) * c4];
      let v3 = parts4[base + (r + 48u) * c4];
      a0 += v0;
      a1 += v1;
      a2 += v2;
      a3 += v3;
    }
    for (; r < seg.y; r += 16u) { a0 += parts4[base + r * c4]; }
  }
  sh[lid] = (a0 + a1) + (a2 + a3);
  workgroupBarrier();
  if (lane == 0u && col < c4) {
    var t = sh[lid];
    for (var k = 1u; k < 16u; k++) { t += sh[k * 16u + lid]; }
    let o = seg.w / 4u + col;
    dst4[o] = dst4[o] + t;
  }
}

@compute @workgroup_size(WG)
fn sum1(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= table.head.y) { return; }
  let s = segmentOf(w);
  let seg = table.segs[s];
  let col = (w - firstStrip(s)) * STRIP + lid % STRIP;
  let lane = lid / STRIP;
  var a0 = 0.0;
  var a1 = 0.0;
  if (col < seg.z) {
    let base = seg.x + col;
    var r = lane;
    for (; r + 4u < seg.y; r += 8u) {
      let v0 = parts[base + r * seg.z];
      let v1 = parts[base + (r + 4u) * seg.z];
      a0 += v0;
      a1 += v1;
    }
    for (; r < seg.y; r += 4u) { a0 += parts[base + r * seg.z]; }
  }
  sh1[lid] = a0 + a1;
  workgroupBarrier();
  if (lane == 0u && col < seg.z) {
    let t = ((sh1[lid] + sh1[lid + STRIP]) + sh1[lid + 2u * STRIP]) + sh1[lid + 3u * STRIP];
    dst[seg.w + col] = dst[seg.w + col] + t;
  }
}
