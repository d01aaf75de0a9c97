// One decode step of causal grouped-query attention over the KV cache, fused: for query head h of
// row b, scores against positions 0..pos (scale · q·k), softmax, weighted sum of values. The new
// key/value of position `pos` is read from k_new/v_new (not yet in the cache) and written into the
// cache by the first query head of its group, so one dispatch replaces the cache writes, the two
// cache-slice copies and the four attention ops of the composed path (src/nn/kv_cache.ts keeps
// that path as the reference and the fallback beyond MAXT positions).
//
// One workgroup per (row, query head). Scores live in workgroup memory (pos < MAXT).
override WG: u32 = 64u;
override MAXT: u32 = 2048u;
override MAXD: u32 = 256u;

struct Params {
  B: u32,
  hq: u32,
  hkv: u32,
  d: u32,
  tmax: u32,
  pos: u32,
  scale: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;      // [B, hq, d]
@group(0) @binding(1) var<storage, read> k_new: array<f32>;  // [B, hkv, d]
@group(0) @binding(2) var<storage, read> v_new: array<f32>;  // [B, hkv, d]
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>; // [B, hkv, tmax, d]
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>; // [B, hkv, tmax, d]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;     // [B, hq, d]
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> qs: array<f32, MAXD>;
var<workgroup> sc: array<f32, MAXT>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.B * p.hq) { return; }
  let b = w / p.hq;
  let h = w % p.hq;
  let g = p.hq / p.hkv;
  let kvh = h / g;
  let D = p.d;
  let pos = p.pos;
  let new_base = (b * p.hkv + kvh) * D;
  let cache_base = (b * p.hkv + kvh) * p.tmax * D;
  for (var i = lid; i < D; i += WG) { qs[i] = q[(b * p.hq + h) * D + i]; }
  workgroupBarrier();

  var m = -3.4028235e38;
  for (var t = lid; t <= pos; t += WG) {
    var s = 0.0;
    if (t == pos) {
      for (var i = 0u; i < D; i++) { s += qs[i] * k_new[new_base + i]; }
    } else {
      for (var i = 0u; i < D; i++) { s += qs[i] * k_cache[cache_base + t * D + i]; }
    }
    s *= p.scale;
    sc[t] = s;
    m = max(m, s);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var z = 0.0;
  for (var t = lid; t <= pos; t += WG) {
    let e = exp(sc[t] - mx);
    sc[t] = e;
    z += e;
  }
  red[lid] = z;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var i = lid; i < D; i += WG) {
    var acc = 0.0;
    for (var t = 0u; t < pos; t++) { acc += sc[t] * v_cache[cache_base + t * D + i]; }
    acc += sc[pos] * v_new[new_base + i];
    out[(b * p.hq + h) * D + i] = acc * inv;
  }
  // The group's first query head stores position pos; the others only read positions < pos.
  if (h % g == 0u) {
    for (var i = lid; i < D; i += WG) {
      k_cache[cache_base + pos * D + i] = k_new[new_base + i];
      v_cache[cache_base + pos * D + i] = v_new[new_base + i];
    }
  }
}
