// The policy loss of the RL trainer (SPEC §4 Eq. 5, §5 no-clip row; src/rl/policy_loss.ts, float64
// reference src/rl/policy_loss_reference.ts) over contiguous [B, T] per-token inputs, in three
// dispatches: pl_rows (one workgroup per sequence: per-token terms, their derivative wrt ℓ_new, and
// the sequence's sums), pl_finalize (one workgroup: the loss and the statistics), pl_bwd (one thread
// per token: d loss/dℓ_new). Nothing is read back; sums are in a fixed order (deterministic).
//
// Per kept token (mask 1, inputs finite; ℓ may be −inf): "clip" (MODE 0): d = ℓ_new − ℓ_ref,
// r = exp(clamp(d, ±20)), L = ρ·min(r·Â, clamp(r, 1 − ε_low, 1 + ε_high)·Â), dL/dℓ_new = ρ·Â·r
// where the unclipped branch is active and |d| ≤ 20, else 0. "no-clip" (MODE 1): r = 1, L = ρ·Â,
// dL/dℓ_new = ρ·Â (r = p_new/SG(p_new)). A token whose mask is neither 0 nor 1, or with a NaN/+inf
// log-prob or a non-finite Â or ρ, is left out and counted (its index kept for the report).
// Infinities are tested on the bits: a compiler may assume float math never meets them.
//
// Prepended: ops_rows.wgsl (WG = 256, wg_reduce).

struct Params { b: u32, t: u32, agg: u32, _p: u32, eps_low: f32, eps_high: f32, _q: u32, _r: u32 }

const CLAMP: f32 = 20.0;
const SEQ: u32 = 12u; // floats per sequence in `seq`, see pl_rows

// 0: the mask is f32, 1: u32 or i32 (1 keep, 0 leave out, the bits compared as integers).
override MASK_U32: u32 = 0u;
// 0: "clip", 1: "no-clip" (ℓ_ref not read; its slot binds ℓ_new).
override MODE: u32 = 0u;
// 0: ρ = 1 for every token (the weight slot binds Â and is not read).
override HAS_WEIGHT: u32 = 1u;

@group(0) @binding(0) var<storage, read> lnew: array<f32>;
@group(0) @binding(1) var<storage, read> lref: array<f32>;
@group(0) @binding(2) var<storage, read> adv: array<f32>;
@group(0) @binding(3) var<storage, read> wt: array<f32>;
@group(0) @binding(4) var<storage, read> msk: array<u32>;
@group(0) @binding(5) var<storage, read_write> terms: array<f32>; // [B, T] L_t (0 left out)
@group(0) @binding(6) var<storage, read_write> dterm: array<f32>; // [B, T] dL_t/dℓ_new
@group(0) @binding(7) var<storage, read_write> seq: array<f32>;   // [B, SEQ]
@group(0) @binding(8) var<uniform> p: Params;

fn bad_logp(x: f32) -> bool { // NaN or +inf (−inf is a log-prob)
  let b = bitcast<u32>(x);
  return (b & 0x7fffffffu) > 0x7f800000u || b == 0x7f800000u;
}
fn not_finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }
fn is_neg_inf(x: f32) -> bool { return bitcast<u32>(x) == 0xff800000u; }
fn pos_inf(lid: u32) -> f32 { return bitcast<f32>(0x7f800000u | (lid & 0u)); }

// 0 leave out, 1 keep, 2 neither (counted as non-finite).
fn mask_state(bits: u32) -> u32 {
  if (MASK_U32 == 1u) { return select(2u, bits, bits <= 1u); }
  if ((bits & 0x7fffffffu) == 0u) { return 0u; } // ±0.0
  return select(2u, 1u, bits == 0x3f800000u);      // 1.0
}

// Per sequence (lid 0 writes): seq[row·SEQ + ·] = Σ L, kept tokens, clipped low, clipped high,
// Σ r, clamped tokens, non-finite tokens, max |d| before the clamp, first non-finite position
// (−1 when none), 0, 0, 0.
@compute @workgroup_size(WG)
fn pl_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.b) { return; }
  let lo = 1.0 - p.eps_low;
  let hi = 1.0 + p.eps_high;
  var sums = vec4f(0.0);  // Σ L, kept, clipped low, clipped high
  var sums2 = vec4f(0.0); // Σ r, clamped, non-finite, 0
  var max_d = 0.0;
  var first = f32(p.t);   // min over this thread's non-finite positions (T: none)
  for (var t = lid; t < p.t; t += WG) {
    let i = row * p.t + t;
    terms[i] = 0.0;
    dterm[i] = 0.0;
    let ms = mask_state(msk[i]);
    if (ms == 0u) { continue; }
    let ln = lnew[i];
    let lr = lref[i];
    let a = adv[i];
    let w = select(1.0, wt[i], HAS_WEIGHT == 1u);
    if (ms == 2u || bad_logp(ln) || (MODE == 0u && bad_logp(lr)) || not_finite(a) || not_finite(w)) {
      sums2.z += 1.0;
      first = min(first, f32(t));
      continue;
    }
    var l = w * a;
    var dl = w * a;
    var r = 1.0;
    if (MODE == 0u) {
      // d clamped to ±20 with the −inf cases spelled out (both −inf: ratio 1, as the reference)
      var d = 0.0;
      var abs_d = 0.0;
      if (is_neg_inf(ln) != is_neg_inf(lr)) {
        d = select(CLAMP, -CLAMP, is_neg_inf(ln));
        abs_d = pos_inf(lid);
      } else if (!is_neg_inf(ln)) {
        d = ln - lr;
        abs_d = abs(d);
        d = clamp(d, -CLAMP, CLAMP);
      }
      r = exp(d);
      let clip_hi = a > 0.0 && r > hi;
      let clip_lo = a < 0.0 && r < lo;
      l = w * min(r * a, clamp(r, lo, hi) * a);
      dl = select(0.0, w * a * r, !clip_hi && !clip_lo && abs_d <= CLAMP);
      sums.z += select(0.0, 1.0, clip_lo);
      sums.w += select(0.0, 1.0, clip_hi);
      sums2.y += select(0.0, 1.0, abs_d > CLAMP);
      max_d = max(max_d, abs_d);
    }
    terms[i] = l;
    dterm[i] = dl;
    sums.x += l;
    sums.y += 1.0;
    sums2.x += r;
  }
  let s1 = wg_reduce(sums, lid, false);
  let s2 = wg_reduce(sums2, lid, false);
  let m = wg_reduce(vec4f(max_d, -first, 0.0, 0.0), lid, true);
  if (lid == 0u) {
    let o = row * SEQ;
    seq[o] = s1.x;
    seq[o + 1u] = s1.y;
    seq[o + 2u] = s1.z;
    seq[o + 3u] = s1.w;
    seq[o + 4u] = s2.x;
    seq[o + 5u] = s2.y;
    seq[o + 6u] = s2.z;
    seq[o + 7u] = m.x;
    seq[o + 8u] = select(-m.y, -1.0, -m.y >= f32(p.t));
    seq[o + 9u] = 0.0;
    seq[o + 10u] = 0.0;
    seq[o + 11u] = 0.0;
  }
}

// One workgroup over the B sequences: stats[0..16) = loss, Σ L, kept tokens, kept sequences, empty
// sequences, clip fraction, its low and high parts, mean r, max |d|, clamped tokens, non-finite
// tokens, first non-finite index (row-major, −1 when none), scale, 0, 0. `scale` is the factor
// pl_bwd multiplies every dL_t/dℓ_new by: 1/max(1, kept tokens) (token-mean), 1/max(1, kept
// sequences) (seq-mean-token-mean, times 1/n_b per sequence there), 1/B (seq-mean-token-sum).
@group(0) @binding(0) var<storage, read> seq_f: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<uniform> pf: Params;

@compute @workgroup_size(WG)
fn pl_finalize(@builtin(local_invocation_index) lid: u32) {
  var a = vec4f(0.0); // Σ L, kept tokens, kept sequences, Σ of sequence means
  var c = vec4f(0.0); // clipped low, clipped high, Σ r, clamped
  var e = vec4f(0.0); // non-finite, 0, 0, 0
  var mx = vec4f(0.0, -3.0e38, 0.0, 0.0); // max |d|, −(first non-finite index)
  for (var b = lid; b < pf.b; b += WG) {
    let o = b * SEQ;
    let n = seq_f[o + 1u];
    a += vec4f(seq_f[o], n, select(0.0, 1.0, n > 0.0), select(0.0, seq_f[o] / n, n > 0.0));
    c += vec4f(seq_f[o + 2u], seq_f[o + 3u], seq_f[o + 4u], seq_f[o + 5u]);
    e.x += seq_f[o + 6u];
    mx.x = max(mx.x, seq_f[o + 7u]);
    if (seq_f[o + 8u] >= 0.0) { mx.y = max(mx.y, -(f32(b * pf.t) + seq_f[o + 8u])); }
  }
  a = wg_reduce(a, lid, false);
  c = wg_reduce(c, lid, false);
  e = wg_reduce(e, lid, false);
  mx = wg_reduce(mx, lid, true);
  if (lid == 0u) {
    let kept = a.y;
    let per = 1.0 / max(kept, 1.0);
    var scale = per;                                         // token-mean
    if (pf.agg == 1u) { scale = 1.0 / max(a.z, 1.0); }       // seq-mean-token-mean
    if (pf.agg == 2u) { scale = 1.0 / f32(pf.b); }           // seq-mean-token-sum
    let agg_sum = select(a.x, a.w, pf.agg == 1u);
    let loss = -(agg_sum * scale);
    stats[0] = select(loss, 0.0, loss == 0.0); // +0, not −0, for an empty batch (0 − x may fold to −x)
    stats[1] = a.x;
    stats[2] = kept;
    stats[3] = a.z;
    stats[4] = f32(pf.b) - a.z;
    stats[5] = (c.x + c.y) * per;
    stats[6] = c.x * per;
    stats[7] = c.y * per;
    stats[8] = c.z * per;
    stats[9] = mx.x;
    stats[10] = c.w;
    stats[11] = e.x;
    stats[12] = select(-1.0, -mx.y, mx.y > -3.0e38);
    stats[13] = scale;
    stats[14] = 0.0;
    stats[15] = 0.0;
  }
}

// dx[i] = −dterm[i] · scale · (1/n_b for seq-mean-token-mean) · g: the upstream gradient g of the
// scalar loss is read on the GPU (a loss summed with others gets its share of the sum's gradient).
@group(0) @binding(0) var<storage, read> dterm_b: array<f32>;
@group(0) @binding(1) var<storage, read> seq_b: array<f32>;
@group(0) @binding(2) var<storage, read> stats_b: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn pl_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pb.b * pb.t) { return; }
  var s = stats_b[13];
  if (pb.agg == 1u) {
    let n = seq_b[(i / pb.t) * SEQ + 1u];
    s = select(0.0, s / n, n > 0.0);
  }
  dx[i] = -(dterm_b[i] * s * g[0]); // −0 where the gradient is cut
}
