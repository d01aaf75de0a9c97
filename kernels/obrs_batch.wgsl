// Batch step of OBRS in one workgroup (deterministic: fixed strided rows, fixed reduction tree).
// Phase 1 over valid, unflagged rows: counts, ᾱ = accepted / valid, mean Z_approx, κ = ᾱ / mean
// Z_approx, KL estimates, and the count and first row of flagged (non-finite) rows.
// Phase 2 per row: Z_t = κ Z_approx, w = Z_t max(λ, p_t/p_inf), ρ = min(w, c1) min(p_ref/p_new, c2)
// (second factor only when p_target = p_new), the baselines IS, TIS and IcePop, and statistics of ρ
// over accepted rows. Log-ratios are clamped to ±20 before exp; flagged and padded rows get 0.
override WG: u32 = 256u;

struct Params {
  rows: u32,
  target_is_new: u32,
  has_baseline: u32,
  has_exact: u32,
  lambda: f32,
  log_lambda: f32,
  c1: f32,
  c2: f32,
  tis_cap: f32,
  icepop_lo: f32,
  icepop_hi: f32,
}

@group(0) @binding(0) var<storage, read> row_data: array<f32>;        // [N, 8] (obrs_row.wgsl)
@group(0) @binding(1) var<storage, read> mask: array<u32>;            // [N]
@group(0) @binding(2) var<storage, read_write> w_out: array<f32>;     // [N]
@group(0) @binding(3) var<storage, read_write> rho_out: array<f32>;   // [N]
@group(0) @binding(4) var<storage, read_write> baseline: array<f32>;  // [N, 4]: is, tis, icepop, icepop mask
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;     // [32]
@group(0) @binding(6) var<uniform> params: Params;
@group(0) @binding(7) var<storage, read> kl: array<f32>;             // [N, 2] (obrs_zexact.wgsl)

// Phase 1 slots: 0 valid, 1 accepted, 2 Σa, 3 ΣZ_approx, 4 ΣZ_exact, 5 Σk1, 6 Σk3, 7 flagged,
// 8 first flagged row (min), 9 Σ|Δlog p|, 10 max|Δlog p|, 11 Σ Z_approx/Z_exact (0/0 = 1),
// 12 Σ KL(p_inf ‖ p_target), 13 Σ KL(p_target ‖ p_inf) over the vocabulary (with exact Z).
// Phase 2 slots (stats[14..21]) over accepted rows: Σw, Σw², max w, Σρ, w > c1, p_ref/p_new > c2,
// either clip, max ρ. stats[22] = κ. The reduction array is reused so it fits 16 KiB.
const NSTAT1: u32 = 14u;
const NSTAT2: u32 = 8u;
var<workgroup> red: array<f32, NSTAT1 * WG>;
var<workgroup> kappa_shared: f32;

const NEG_INF_BITS: u32 = 0xff800000u;

// a - b for log-probs, clamped to ±20; two -Inf give 0 (equal zero probabilities).
fn log_ratio(a: f32, b: f32) -> f32 {
  if (bitcast<u32>(a) == NEG_INF_BITS && bitcast<u32>(b) == NEG_INF_BITS) { return 0.0; }
  return clamp(a - b, -20.0, 20.0);
}

// Tree over WG partials; `mins` / `maxs` are bit sets of the slots reduced by min / max.
fn reduce(lid: u32, count: u32, mins: u32, maxs: u32) {
  for (var half = WG >> 1u; half > 0u; half >>= 1u) {
    if (lid < half) {
      for (var s = 0u; s < count; s++) {
        let a = red[s * WG + lid];
        let b = red[s * WG + lid + half];
        var v = a + b;
        if ((mins & (1u << s)) != 0u) { v = min(a, b); }
        if ((maxs & (1u << s)) != 0u) { v = max(a, b); }
        red[s * WG + lid] = v;
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let n = params.rows;
  var acc: array<f32, NSTAT1>;
  for (var s = 0u; s < NSTAT1; s++) { acc[s] = 0.0; }
  acc[8] = 3.0e38;
  for (var r = lid; r < n; r += WG) {
    let o = r * 8u;
    let status = u32(row_data[o + 7u]);
    if ((status & 256u) != 0u) { continue; }
    if (status != 0u) {
      acc[7] += 1.0;
      acc[8] = min(acc[8], f32(r));
      continue;
    }
    acc[0] += 1.0;
    acc[1] += f32(mask[r]);
    acc[2] += exp(row_data[o + 6u]);
    let za = row_data[o + 4u];
    let ze = row_data[o + 5u];
    acc[3] += za;
    acc[4] += ze;
    acc[11] += select(1.0, za / ze, ze > 0.0);
    if (params.has_exact != 0u) {
      acc[12] += kl[r * 2u];
      acc[13] += kl[r * 2u + 1u];
    }
    let d = log_ratio(row_data[o + 3u], row_data[o]); // log p_new/p_inf at the sampled token
    acc[5] += -d;
    acc[6] += exp(d) - 1.0 - d;
    acc[9] += abs(d);
    acc[10] = max(acc[10], abs(d));
  }
  for (var s = 0u; s < NSTAT1; s++) { red[s * WG + lid] = acc[s]; }
  workgroupBarrier();
  reduce(lid, NSTAT1, 1u << 8u, 1u << 10u);
  if (lid < NSTAT1) { stats[lid] = red[lid * WG]; }
  if (lid == 0u) {
    // κ = ᾱ / mean Z_approx = accepted / ΣZ_approx; 0 when there is nothing to estimate it from.
    let sz = red[3u * WG];
    kappa_shared = select(0.0, red[1u * WG] / sz, sz > 0.0);
  }
  let kappa = workgroupUniformLoad(&kappa_shared);

  var st: array<f32, NSTAT2>;
  for (var s = 0u; s < NSTAT2; s++) { st[s] = 0.0; }
  for (var r = lid; r < n; r += WG) {
    let o = r * 8u;
    let status = u32(row_data[o + 7u]);
    var w = 0.0;
    var rho = 0.0;
    var b = vec4f(0.0);
    if (status == 0u) {
      let lp_inf = row_data[o];
      let lp_tgt = row_data[o + 1u];
      let lp_ref = row_data[o + 2u];
      let lp_new = row_data[o + 3u];
      let z_t = kappa * row_data[o + 4u];
      w = z_t * exp(max(params.log_lambda, log_ratio(lp_tgt, lp_inf)));
      var factor = 1.0;
      var clip2 = false;
      if (params.target_is_new != 0u) {
        let q = exp(log_ratio(lp_ref, lp_new));
        factor = min(q, params.c2);
        clip2 = q > params.c2;
      }
      rho = min(w, params.c1) * factor;
      if (params.has_baseline != 0u) {
        let is_w = exp(log_ratio(lp_ref, lp_inf));
        let inside = is_w >= params.icepop_lo && is_w <= params.icepop_hi;
        b = vec4f(is_w, min(is_w, params.tis_cap), select(0.0, is_w, inside), select(0.0, 1.0, inside));
      }
      if (mask[r] != 0u) {
        let clip1 = w > params.c1;
        st[0] += w;
        st[1] += w * w;
        st[2] = max(st[2], w);
        st[3] += rho;
        st[4] += select(0.0, 1.0, clip1);
        st[5] += select(0.0, 1.0, clip2);
        st[6] += select(0.0, 1.0, clip1 || clip2);
        st[7] = max(st[7], rho);
      }
    }
    w_out[r] = w;
    rho_out[r] = rho;
    if (params.has_baseline != 0u) {
      baseline[r * 4u] = b.x;
      baseline[r * 4u + 1u] = b.y;
      baseline[r * 4u + 2u] = b.z;
      baseline[r * 4u + 3u] = b.w;
    }
  }
  workgroupBarrier();
  for (var s = 0u; s < NSTAT2; s++) { red[s * WG + lid] = st[s]; }
  workgroupBarrier();
  reduce(lid, NSTAT2, 0u, (1u << 2u) | (1u << 7u));
  if (lid < NSTAT2) { stats[NSTAT1 + lid] = red[lid * WG]; }
  if (lid == 0u) { stats[NSTAT1 + NSTAT2] = kappa; }
}
