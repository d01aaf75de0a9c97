// Actor–policy mismatch metrics of one training step (SPEC §8, §10), after ops_rows.wgsl: one
// workgroup reads the sampled tokens' log-probs under the rollout model (ℓ_inf) and the policy
// (ℓ_new) and, when logits were given, the per-row statistics of kernels/rl_distill.wgsl
// (student = policy, teacher = actor), and writes every metric into one small f32 array, so the
// trainer reads them all with one readback (src/rl/mismatch.ts decodes it).
//
// out[0..16): kept tokens, Σ k1 = Σ(ℓ_inf − ℓ_new), Σ k3 = Σ(r − 1 − log r) with
// log r = clamp(ℓ_new − ℓ_inf, ±20), Σ |ℓ_new − ℓ_inf|, max |…|, max and min of the raw
// ℓ_new − ℓ_inf, non-finite tokens (left out of every other token value), kept rows,
// Σ H(policy), Σ H(actor), Σ KL(actor ‖ policy), Σ KL(policy ‖ actor) over the vocabulary,
// non-finite rows (left out likewise), the flags, 0. Sums, not means: the host divides in float64.
// out[16..16 + NB): a histogram of |ℓ_new − ℓ_inf| over kept finite tokens: bin 0 below 1e-6,
// bins 1..128 sixteen per decade up to 1e2 (bin i: [10^(−6 + (i−1)/16), 10^(−6 + i/16))), the
// last one 1e2 and above; the host takes the p95 from it.
const NB: u32 = 130u;

struct Params { n_tok: u32, n_rows: u32, flags: u32, _a: u32 }
const F_TMASK: u32 = 1u;     // a token mask is bound
const F_TMASK_F32: u32 = 2u; // ... of f32 (±0.0 drop), else u32/i32
const F_ROWS: u32 = 4u;      // row statistics are bound
const F_RMASK: u32 = 8u;
const F_RMASK_F32: u32 = 16u;

@group(0) @binding(0) var<storage, read> l_inf: array<f32>;
@group(0) @binding(1) var<storage, read> l_new: array<f32>;
@group(0) @binding(2) var<storage, read> tmask: array<u32>;
@group(0) @binding(3) var<storage, read> row_st: array<f32>; // [N, 8] from distill_fwd
@group(0) @binding(4) var<storage, read> rmask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> hist: array<atomic<u32>, NB>;

fn keep(m: u32, f32mask: bool) -> bool { return select(m != 0u, (m & 0x7fffffffu) != 0u, f32mask); }

fn finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) < 0x7f800000u; }

// r − 1 − log r for log r = x: a series below |x| = 0.1, where exp(x) − 1 − x would cancel in f32.
fn k3_of(x: f32) -> f32 {
  if (abs(x) < 0.1) {
    return x * x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0))));
  }
  return exp(x) - 1.0 - x;
}

fn bin_of(a: f32) -> u32 {
  if (a < 1e-6) { return 0u; }
  if (a >= 100.0) { return NB - 1u; }
  let b = floor(16.0 * (log2(a) * 0.30102999566398120 + 6.0));
  return clamp(u32(max(b, 0.0)) + 1u, 1u, NB - 2u);
}

@compute @workgroup_size(WG)
fn mismatch_stats(@builtin(local_invocation_index) lid: u32) {
  let ninf = neg_inf(lid);
  var sums = vec4f(0.0); // count, k1, k3, |d|
  var maxes = vec4f(0.0, ninf, ninf, 0.0); // max |d|, max log r, −min log r
  var bad = 0.0;
  let has_t = (p.flags & F_TMASK) != 0u;
  let t_f32 = (p.flags & F_TMASK_F32) != 0u;
  for (var i = lid; i < p.n_tok; i += WG) {
    if (has_t && !keep(tmask[i], t_f32)) { continue; }
    let a = l_inf[i];
    let b = l_new[i];
    if (!finite(a) || !finite(b)) {
      bad += 1.0;
      continue;
    }
    let lr = b - a;
    let d = abs(lr);
    sums += vec4f(1.0, -lr, k3_of(clamp(lr, -20.0, 20.0)), d);
    maxes = max(maxes, vec4f(d, lr, -lr, 0.0));
    atomicAdd(&hist[bin_of(d)], 1u);
  }
  var rsums = vec4f(0.0); // H(policy), H(actor), KL(actor ‖ policy), KL(policy ‖ actor)
  var rcount = vec2f(0.0); // kept rows, non-finite rows
  if ((p.flags & F_ROWS) != 0u) {
    let has_r = (p.flags & F_RMASK) != 0u;
    let r_f32 = (p.flags & F_RMASK_F32) != 0u;
    for (var r = lid; r < p.n_rows; r += WG) {
      if (has_r && !keep(rmask[r], r_f32)) { continue; }
      let v = vec4f(row_st[8u * r + 6u], row_st[8u * r + 7u], row_st[8u * r + 4u],
                    row_st[8u * r + 5u]);
      if (!finite(v.x) || !finite(v.y) || !finite(v.z) || !finite(v.w)) {
        rcount.y += 1.0;
        continue;
      }
      rcount.x += 1.0;
      rsums += v;
    }
  }
  sums = wg_reduce(sums, lid, false);
  maxes = wg_reduce(maxes, lid, true);
  rsums = wg_reduce(rsums, lid, false);
  let counts = wg_reduce(vec4f(bad, rcount.x, rcount.y, 0.0), lid, false);
  // the histogram's atomics are complete after the barriers inside wg_reduce
  for (var k = lid; k < NB; k += WG) { out[16u + k] = f32(atomicLoad(&hist[k])); }
  if (lid == 0u) {
    let any_tok = sums.x > 0.0;
    out[0] = sums.x;
    out[1] = sums.y;
    out[2] = sums.z;
    out[3] = sums.w;
    out[4] = maxes.x;
    out[5] = select(0.0, maxes.y, any_tok);
    out[6] = select(0.0, -maxes.z, any_tok);
    out[7] = counts.x;
    out[8] = counts.y;
    out[9] = rsums.x;
    out[10] = rsums.y;
    out[11] = rsums.z;
    out[12] = rsums.w;
    out[13] = counts.z;
    out[14] = f32(p.flags); // the decode reads which of the row values were computed
    out[15] = 0.0;
  }
}
