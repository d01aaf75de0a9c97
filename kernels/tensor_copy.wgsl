// Strided copy of 32-bit elements: dst[dst_off + Σ i_k·dstr_k] = src[src_off + Σ i_k·sstr_k] over
// `shape` (rank <= 8). Materialises views (transpose, slice, expand) and writes into sub-views
// (concat, slice backward). The element type does not matter: bits are copied.
override WG: u32 = 256u;

struct Params {
  count: u32, rank: u32, src_off: u32, dst_off: u32,
  shape: array<vec4u, 2>, sstr: array<vec4u, 2>, dstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.count) { return; }
  var rem = i;
  var s = p.src_off;
  var d = p.dst_off;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let q = u32(k) / 4u;
    let r = u32(k) % 4u;
    let n = p.shape[q][r];
    let idx = rem % n;
    rem = rem / n;
    s += idx * p.sstr[q][r];
    d += idx * p.dstr[q][r];
  }
  dst[d] = src[s];
}
