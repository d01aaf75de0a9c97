// Per row (token) of OBRS: Z_approx over topk(p_inf) ∪ topk(p_new) (de-duplicated by id), the
// acceptance log a = min(0, lp_target - lp_inf - log λ) of the sampled token, and its Bernoulli
// mask M = uniform_at(seed, row, 0) < a (rng.wgsl is prepended). One workgroup per row.
//
// row_data [N, 8]: lp_inf, lp_target, lp_ref, lp_new, z_approx, z_exact (written by obrs_zexact),
// log_accept, status. status = flags | 256 (padded row); flags: 1 NaN/+Inf input, 2 all -Inf row,
// 4 id out of range, 8 id repeated in a captured top-k, 16 NaN in a derived value.
override WG: u32 = 64u;

struct Params {
  rows: u32,
  ki: u32,             // ids per row in topk(p_inf)
  kn: u32,             // ids per row in topk(p_new)
  seed: u32,
  log_lambda: f32,
  target_region: u32,  // info region of p_target: 1 = new, 2 = ref
  has_ref: u32,        // info region 2 holds p_ref's sampled log-prob
  has_inf_at_new: u32, // p_inf is known at topk(p_new) ids (else those ids add 0 to Z_approx)
  has_valid: u32,      // `valid` holds a 0/1 per row (else every row is valid)
  tgt_at_inf: u32,     // offsets (elements) of the gathered regions in `gath`: [N, ki]
  tgt_at_new: u32,     // [N, kn]
  inf_at_new: u32,     // [N, kn]
}

@group(0) @binding(0) var<storage, read> inf_ids: array<u32>;  // [N, ki]
@group(0) @binding(1) var<storage, read> inf_vals: array<f32>; // [N, ki] log p_inf
@group(0) @binding(2) var<storage, read> new_ids: array<u32>;  // [N, kn]
@group(0) @binding(3) var<storage, read> gath: array<f32>;
@group(0) @binding(4) var<storage, read> info: array<f32>;     // [4N, 4]: max, sampled, flags, log Σ
@group(0) @binding(5) var<storage, read> valid: array<u32>;    // [N]
@group(0) @binding(6) var<storage, read_write> row_data: array<f32>; // [N, 8]
@group(0) @binding(7) var<storage, read_write> mask: array<u32>;     // [N]
@group(0) @binding(8) var<uniform> params: Params;

const NEG_INF_BITS: u32 = 0xff800000u;

var<workgroup> red_z: array<f32, WG>;
var<workgroup> red_bad: array<u32, WG>;

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// min(p_inf, p_target / λ) from log-probs; NaN inputs are counted by the caller.
fn capped(lp_inf: f32, lp_tgt: f32) -> f32 {
  return exp(min(lp_inf, lp_tgt - params.log_lambda));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let ki = params.ki;
  let kn = params.kn;
  var z = 0.0;
  var bad = 0u;
  for (var j = lid; j < ki; j += WG) {
    let a = inf_vals[r * ki + j];
    let b = gath[params.tgt_at_inf + r * ki + j];
    if (is_nan(a) || is_nan(b)) { bad = 1u; } else { z += capped(a, b); }
  }
  if (params.has_inf_at_new != 0u) {
    for (var j = lid; j < kn; j += WG) {
      let id = new_ids[r * kn + j];
      var member = false;
      for (var i = 0u; i < ki; i++) {
        if (inf_ids[r * ki + i] == id) { member = true; break; }
      }
      if (!member) {
        let a = gath[params.inf_at_new + r * kn + j];
        let b = gath[params.tgt_at_new + r * kn + j];
        if (is_nan(a) || is_nan(b)) { bad = 1u; } else { z += capped(a, b); }
      }
    }
  }
  red_z[lid] = z;
  red_bad[lid] = bad;
  workgroupBarrier();
  for (var half = WG >> 1u; half > 0u; half >>= 1u) {
    if (lid < half) {
      red_z[lid] += red_z[lid + half];
      red_bad[lid] |= red_bad[lid + half];
    }
    workgroupBarrier();
  }
  if (lid != 0u) { return; }

  let n = params.rows;
  let lp_inf = info[r * 4u + 1u];
  let lp_new = info[(n + r) * 4u + 1u];
  let lp_tgt = info[(params.target_region * n + r) * 4u + 1u];
  var flags = u32(info[r * 4u + 2u]) | u32(info[(n + r) * 4u + 2u]);
  var lp_ref = lp_new;
  if (params.has_ref != 0u) {
    lp_ref = info[(2u * n + r) * 4u + 1u];
    flags |= u32(info[(2u * n + r) * 4u + 2u]);
  }
  // p_inf(x) = 0 accepts (a = 1), the reference's convention; the ratio in w is then clamped.
  var log_accept = 0.0;
  if (bitcast<u32>(lp_inf) != NEG_INF_BITS) {
    log_accept = min(0.0, lp_tgt - lp_inf - params.log_lambda);
  }
  if (red_bad[0] != 0u || is_nan(log_accept)) { flags |= 16u; }
  var ok = flags == 0u;
  var status = flags;
  if (params.has_valid != 0u && valid[r] == 0u) {
    ok = false;
    status |= 256u;
  }
  let u = rng_uniform_at(params.seed, r, 0u);
  mask[r] = select(0u, 1u, ok && u < exp(log_accept));
  let o = r * 8u;
  row_data[o] = lp_inf;
  row_data[o + 1u] = lp_tgt;
  row_data[o + 2u] = lp_ref;
  row_data[o + 3u] = lp_new;
  row_data[o + 4u] = red_z[0];
  row_data[o + 6u] = log_accept;
  row_data[o + 7u] = f32(status);
}
