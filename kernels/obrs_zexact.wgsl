// Exact Z = Σ_v min(p_inf(v), p_target(v)/λ) over the whole vocabulary, per row (a diagnostic of
// Z_approx; it reads both logits rows again), and in the same pass the full-vocabulary
// KL(p_inf ‖ p_target) and KL(p_target ‖ p_inf). One workgroup per row; writes row_data[row, 5]
// and kl[row, 0..1].
override WG: u32 = 256u;

struct Params {
  vocab: u32,
  rows: u32,          // rows in this tile
  row0: u32,          // global index of the tile's first row
  n: u32,             // rows in the batch (size of one `info` region)
  target_region: u32, // 1 = new, 2 = ref
  log_lambda: f32,
  inf_region: u32,    // info region of p_inf's row summary (0, or 3 for trainer-side rows)
}

@group(0) @binding(0) var<storage, read> inf_logits: array<f32>; // tile
@group(0) @binding(1) var<storage, read> tgt_logits: array<f32>; // tile
@group(0) @binding(2) var<storage, read> info: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_data: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> kl: array<f32>; // [N, 2]

var<workgroup> red: array<f32, 3 * WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let grow = params.row0 + r;
  // info rows: (max, sampled, flags, log Σ); log-probs are (x − max) − log Σ (topk_stream.wgsl).
  let oi = (params.inf_region * params.n + grow) * 4u;
  let ot = (params.target_region * params.n + grow) * 4u;
  let max_inf = info[oi];
  let ls_inf = info[oi + 3u];
  let max_tgt = info[ot];
  let ls_tgt = info[ot + 3u];
  let base = r * params.vocab;
  var z = 0.0;
  var kl_it = 0.0;
  var kl_ti = 0.0;
  for (var i = lid; i < params.vocab; i += WG) {
    let a = (inf_logits[base + i] - max_inf) - ls_inf;
    let b = (tgt_logits[base + i] - max_tgt) - ls_tgt;
    let v = exp(min(a, b - params.log_lambda));
    if (v == v) { z += v; } // NaN entries are flagged by topk_stream; keep the sums readable
    let pa = exp(a);
    let pb = exp(b);
    if (pa > 0.0) { kl_it += pa * (a - b); } // +Inf where p_target = 0 < p_inf: KL is infinite
    if (pb > 0.0) { kl_ti += pb * (b - a); }
  }
  red[lid] = z;
  red[WG + lid] = kl_it;
  red[2u * WG + lid] = kl_ti;
  workgroupBarrier();
  for (var half = WG >> 1u; half > 0u; half >>= 1u) {
    if (lid < half) {
      for (var s = 0u; s < 3u; s++) { red[s * WG + lid] += red[s * WG + lid + half]; }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    row_data[grow * 8u + 5u] = red[0];
    // Rounding can leave a tiny negative sum when the rows agree; KL itself is never negative.
    kl[grow * 2u] = max(0.0, red[WG]);
    kl[grow * 2u + 1u] = max(0.0, red[2u * WG]);
  }
}
