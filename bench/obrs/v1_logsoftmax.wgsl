// Row log-sum-exp and log-softmax over x [rows, V]. `lse`: one workgroup per row, each thread an
// online (max, sum) over a strided slice, combined by a fixed tree (deterministic). `apply`: one
// thread per element, out = x - lse[row]. -Inf entries give -Inf; an all -Inf row gives lse = -Inf
// (its log-probs NaN); a NaN anywhere in a row makes its lse and log-probs NaN (tested by bits:
// the compiler may fold `v != v` to false). Callers that need counts use topk_stream's flags.
override WG: u32 = 256u;

struct Params {
  vocab: u32,
  rows: u32, // rows in this tile
  row0: u32, // global index of the tile's first row (indexes `lse`)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> lse_out: array<f32>; // [N]
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;     // apply only: the tile's log-probs

const NEG_INF_BITS: u32 = 0xff800000u;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_nan: array<u32, WG>;

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(WG)
fn lse(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let base = r * params.vocab;
  var m = bitcast<f32>(NEG_INF_BITS);
  var s = 0.0;
  var nan = 0u;
  for (var i = lid; i < params.vocab; i += WG) {
    let v = x[base + i];
    if (is_nan(v)) { nan = 1u; continue; }
    if (bitcast<u32>(v) == NEG_INF_BITS) { continue; }
    if (v > m) {
      s = s * exp(m - v) + 1.0;
      m = v;
    } else {
      s += exp(v - m);
    }
  }
  red_m[lid] = m;
  red_s[lid] = s;
  red_nan[lid] = nan;
  workgroupBarrier();
  for (var half = WG >> 1u; half > 0u; half >>= 1u) {
    if (lid < half) {
      let m1 = red_m[lid];
      let m2 = red_m[lid + half];
      let mm = max(m1, m2);
      var s1 = 0.0;
      var s2 = 0.0;
      if (bitcast<u32>(m1) != NEG_INF_BITS) { s1 = red_s[lid] * exp(m1 - mm); }
      if (bitcast<u32>(m2) != NEG_INF_BITS) { s2 = red_s[lid + half] * exp(m2 - mm); }
      red_s[lid] = s1 + s2;
      red_m[lid] = mm;
      red_nan[lid] = red_nan[lid] | red_nan[lid + half];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    if (red_nan[0] != 0u) {
      lse_out[params.row0 + r] = bitcast<f32>(0x7fc00000u);
    } else {
      lse_out[params.row0 + r] = red_m[0] + log(red_s[0]);
    }
  }
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.rows * params.vocab) { return; }
  out[t] = x[t] - lse_out[params.row0 + t / params.vocab];
}
