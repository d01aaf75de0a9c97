// The trainer's replay of the sampling distribution (SPEC §10): the log-prob of a given token under
// the processed distribution that sample_row.wgsl samples from (temperature, top-k, top-p with the
// same thresholds, sample_common.wgsl prepended), differentiable with respect to the logits for a
// fixed kept set. Float64 reference: processedLogProbs in src/nn/sampling_reference.ts.
//
// fwd: one workgroup per row; out[n] = z[tok] - lse over the kept set (z = (logit - max) / T), -inf
//      when the token is truncated; greedy (T = 0): 0 for the argmax (lowest id among ties), else
//      -inf. Saves (threshold key or argmax id, bits of the kept lse, bits of the row max) per row
//      for the backward.
// bwd: one thread per element; dx[n, i] = g[n] / T · (1[i = tok] − p_i) over kept i, 0 elsewhere,
//      and 0 for a truncated token or greedy rows (the log-prob is constant there).
//
// Logits over one storage binding come in blocks of rows, one dispatch each (src/nn/replay.ts):
// `rows` is then the block's and `row0` its first row; logits and dx are the block's (indexed from
// its row 0), tokens, out, saved and g the whole tensors' (indexed by row0 + the row in the block).
struct Params {
  rows: u32,
  vocab: u32,
  top_k: u32,
  row0: u32,
  temperature: f32,
  top_p: f32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;      // [N, V]
@group(0) @binding(1) var<storage, read> tokens: array<i32>;      // [N]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // [N]
@group(0) @binding(3) var<storage, read_write> saved: array<u32>; // [N, 3]
@group(0) @binding(4) var<uniform> params: Params;

@group(0) @binding(0) var<storage, read> xb: array<f32>;
@group(0) @binding(1) var<storage, read> tb: array<i32>;
@group(0) @binding(2) var<storage, read> sb: array<u32>;
@group(0) @binding(3) var<storage, read> gb: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let local = wid.x + wid.y * nwg.x;
  if (local >= params.rows) { return; }
  let r = params.row0 + local;
  let V = params.vocab;
  let base = local * V;
  var m_t = bitcast<f32>(NEG_INF_BITS);
  for (var i = lid; i < V; i += WG) { m_t = max(m_t, logits[base + i]); }
  let m = reduce_max_f(m_t, lid);
  let tok = tokens[r];
  let in_range = tok >= 0 && u32(tok) < V;
  var lp = bitcast<f32>(NEG_INF_BITS);
  if (params.temperature == 0.0) {
    var first = 0xffffffffu;
    for (var i = lid; i < V; i += WG) {
      if (logits[base + i] == m) { first = min(first, i); }
    }
    let best = reduce_min_u(first, lid);
    if (lid == 0u) {
      if (in_range && u32(tok) == best) { lp = 0.0; }
      saved[r * 3u] = best;
      saved[r * 3u + 1u] = 0u;
      saved[r * 3u + 2u] = 0u;
    }
  } else {
    row_max = m;
    let th = truncation_threshold(base, lid);
    let lse = log(kept_mass(base, th, lid));
    if (lid == 0u) {
      if (in_range) {
        let z = z_at(base, u32(tok));
        if (key_of(z) >= th) { lp = z - lse; }
      }
      saved[r * 3u] = th;
      saved[r * 3u + 1u] = bitcast<u32>(lse);
      saved[r * 3u + 2u] = bitcast<u32>(m);
    }
  }
  if (lid == 0u) {
    if (!in_range) { lp = bitcast<f32>(0x7fc00000u); } // NaN: an id outside the vocabulary
    out[r] = lp;
  }
}

@compute @workgroup_size(WG)
fn bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  let V = pb.vocab;
  if (e >= pb.rows * V) { return; }
  let local = e / V;
  let r = pb.row0 + local;
  let i = e % V;
  var d = 0.0;
  let tok = tb[r];
  if (pb.temperature > 0.0 && tok >= 0 && u32(tok) < V) {
    let th = sb[r * 3u];
    let lse = bitcast<f32>(sb[r * 3u + 1u]);
    let m = bitcast<f32>(sb[r * 3u + 2u]);
    let zt = (xb[local * V + u32(tok)] - m) / pb.temperature;
    if (key_of(zt) >= th) {
      let z = (xb[e] - m) / pb.temperature;
      var p = 0.0;
      if (key_of(z) >= th) { p = exp(z - lse); }
      var ind = 0.0;
      if (i == u32(tok)) { ind = 1.0; }
      d = gb[r] / pb.temperature * (ind - p);
    }
  }
  dx[e] = d;
}
