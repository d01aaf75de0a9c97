// Full-vocabulary KL between two logit rows (the rollout model's distillation, SPEC §6), after
// ops_rows.wgsl and one of the two load sections at the end (src/rl/distill.ts splits this file on
// its `//#section` lines): `load4` reads a quad of a row as one vec4 (V % 4 == 0), `load1` as four
// guarded scalars (other V; the quad past the row's end is -inf, which has no mass in either model).
//
// distill_fwd: one workgroup per row. Pass 1 walks the row's tiles once, keeping per lane an online
// (max, Σ exp(x − max)) of the student and of the teacher (rescaled once per tile, not per
// element); pass 2 takes, from the log-probs, KL(t ‖ s), KL(s ‖ t) and both entropies. A row of up
// to one register tile (4096) is read from memory once; a longer one twice (pass 2 re-reads it).
// Probabilities are never stored: distill_bwd recomputes them from the saved statistics.
//
// Conventions (as kernels/obrs_zexact.wgsl and src/obrs/reference/divergence.ts): 0·log 0 = 0, so a
// -inf logit in the distribution a KL averages over contributes 0; mass where the other model has a
// -inf logit gives +inf. A row with a NaN or +inf logit, or all -inf in either model, is invalid:
// every per-row value is NaN (the finalize counts it). Rows the mask drops write zeros.
//
// Rows over one storage binding are dispatched in blocks (src/tensor/blocks.ts): `rows`, `row0` are
// the block's; the logits and dx are the block's, the per-row arrays the whole tensors'.
struct Params { rows: u32, v: u32, row0: u32, flags: u32, inv_t: f32, n: u32, _b: u32, _c: u32 }

const F_REVERSE: u32 = 1u;  // the loss is KL(s ‖ t), else KL(t ‖ s)
const F_MASK: u32 = 2u;     // a mask is bound
const F_MASK_F32: u32 = 4u; // ... of f32 (±0.0 drop a row), else u32/i32 (0 drops it)

@group(0) @binding(2) var<storage, read> mask: array<u32>;            // [N] (whole)
@group(0) @binding(3) var<storage, read_write> row_kl: array<f32>;    // [N] the loss direction
@group(0) @binding(4) var<storage, read_write> row_st: array<vec4f>;  // [N, 2] see distill_fwd
@group(0) @binding(5) var<uniform> p: Params;

fn keep(m: u32, flags: u32) -> bool {
  return select(m != 0u, (m & 0x7fffffffu) != 0u, (flags & F_MASK_F32) != 0u);
}

// Whether row `row` (of the whole tensor) takes part: the mask is read only when one is bound.
fn kept_row(row: u32) -> bool { return (p.flags & F_MASK) == 0u || keep(mask[row], p.flags); }

// 1.0 when a lane is NaN or +inf (bit tests: a fast-math compiler may fold `x != x`).
fn invalid4(v: vec4f) -> f32 {
  let b = bitcast<vec4u>(v);
  let nan = (b & vec4u(0x7fffffffu)) > vec4u(0x7f800000u);
  return select(0.0, 1.0, any(nan) || any(b == vec4u(0x7f800000u)));
}

fn nan4(v: vec4f) -> bool { return any((bitcast<vec4u>(v) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u)); }

fn nan_at(lid: u32) -> f32 { return bitcast<f32>(0x7fc00000u | (lid & 0u)); }

// exp(x − m) where the lane's max m is finite, else 0 (−inf − −inf would be NaN).
fn ex(x: vec4f, m: vec4f, ninf: f32) -> vec4f { return select(vec4f(0.0), exp(x - m), m > vec4f(ninf)); }

// Σ over a quad of q·(lq − lo), 0 where q = 0 (so −inf log-probs there give 0, not NaN).
fn xlogx(q: vec4f, lq: vec4f, lo: vec4f) -> f32 { return hsum(select(q * (lq - lo), vec4f(0.0), q == vec4f(0.0))); }

// Writes per row: row_st[2r] = (max_s, log Σ_s, max_t, log Σ_t) of the tempered logits (x / T),
// row_st[2r + 1] = (KL(t ‖ s), KL(s ‖ t), H(s), H(t)), row_kl[r] = the loss direction's KL.
@compute @workgroup_size(WG)
fn distill_fwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let local = wid.x + wid.y * nwg.x;
  if (local >= p.rows) { return; }
  let row = p.row0 + local;
  if (!kept_row(row)) {
    if (lid == 0u) {
      row_kl[row] = 0.0;
      row_st[2u * row] = vec4f(0.0);
      row_st[2u * row + 1u] = vec4f(0.0);
    }
    return;
  }
  let c4 = (p.v + 3u) / 4u;
  let nt = tiles(c4);
  let ninf = neg_inf(lid);
  var sa: array<vec4f, KMAX>;
  var ta: array<vec4f, KMAX>;
  var ms = vec4f(ninf);
  var mt = vec4f(ninf);
  var ss = vec4f(0.0);
  var st = vec4f(0.0);
  var bad = 0.0;
  for (var t = 0u; t < nt; t++) {
    var tms = vec4f(ninf);
    var tmt = vec4f(ninf);
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      sa[j] = vec4f(ninf);
      ta[j] = vec4f(ninf);
      if (q < c4) {
        sa[j] = ld_s(local, q) * p.inv_t;
        ta[j] = ld_t(local, q) * p.inv_t;
      }
    }
    for (var j = 0u; j < K; j++) {
      bad += invalid4(sa[j]) + invalid4(ta[j]);
      tms = max(tms, sa[j]);
      tmt = max(tmt, ta[j]);
    }
    let nms = max(ms, tms);
    let nmt = max(mt, tmt);
    ss = ex(ms, nms, ninf) * ss;
    st = ex(mt, nmt, ninf) * st;
    for (var j = 0u; j < K; j++) {
      ss += ex(sa[j], nms, ninf);
      st += ex(ta[j], nmt, ninf);
    }
    ms = nms;
    mt = nmt;
  }
  let mm = wg_reduce(vec4f(hmax(ms), hmax(mt), 0.0, 0.0), lid, true);
  let sum_s = hsum(ex(ms, vec4f(mm.x), ninf) * ss);
  let sum_t = hsum(ex(mt, vec4f(mm.y), ninf) * st);
  let sums = wg_reduce(vec4f(sum_s, sum_t, bad, 0.0), lid, false);
  let ls = log(sums.x);
  let lt = log(sums.y);
  var acc = vec4f(0.0);
  for (var t = 0u; t < nt; t++) {
    for (var j = 0u; j < K; j++) {
      let q = tq(t, j, lid);
      if (q < c4) {
        if (nt > 1u) {
          sa[j] = ld_s(local, q) * p.inv_t;
          ta[j] = ld_t(local, q) * p.inv_t;
        }
        // (x − max) − log Σ: near −3.4e38, x − (max + log Σ) would lose log Σ
        let lps = (sa[j] - mm.x) - ls;
        let lpt = (ta[j] - mm.y) - lt;
        let ps = exp(lps);
        let pt = exp(lpt);
        acc += vec4f(xlogx(pt, lpt, lps), xlogx(ps, lps, lpt), -xlogx(ps, lps, vec4f(0.0)),
                     -xlogx(pt, lpt, vec4f(0.0)));
      }
    }
  }
  acc = wg_reduce(acc, lid, false);
  if (lid == 0u) {
    // Rounding can leave a tiny negative sum when the rows agree; KL and H are never negative.
    var out = max(acc, vec4f(0.0));
    if (sums.z > 0.0 || !(mm.x > ninf) || !(mm.y > ninf)) { out = vec4f(nan_at(lid)); }
    row_st[2u * row] = vec4f(mm.x, ls, mm.y, lt);
    row_st[2u * row + 1u] = out;
    row_kl[row] = select(out.x, out.y, (p.flags & F_REVERSE) != 0u);
  }
}

// The gradient wrt the student's raw logits, one quad per thread, for the loss g · scale · Σ_rows:
// forward KL: (p_s − p_t) / T; reverse: p_s ⊙ (log p_s − log p_t − KL(s ‖ t)) / T. Dropped rows get
// 0, as do rows whose reverse KL is +inf (the teacher has no mass where the student has: no finite
// gradient; the finalize counts the row). Rows with invalid logits get NaN.
@group(0) @binding(3) var<storage, read> bkl: array<f32>;
@group(0) @binding(4) var<storage, read> bst: array<vec4f>;
@group(0) @binding(6) var<storage, read> gin: array<f32>;    // [1] upstream gradient of the loss
@group(0) @binding(7) var<storage, read> gscale: array<f32>; // the stats: [1] = 1 / kept rows

@compute @workgroup_size(WG)
fn distill_bwd(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let c4 = (p.v + 3u) / 4u;
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.rows * c4) { return; }
  let local = i / c4;
  let q = i % c4;
  let row = p.row0 + local;
  var d = vec4f(0.0);
  if (kept_row(row)) {
    let a = bst[2u * row];
    let kl = bkl[row]; // the loss direction's
    let g = gin[0] * gscale[1] * p.inv_t;
    let lps = (ld_s(local, q) * p.inv_t - a.x) - a.y;
    let ps = exp(lps);
    if ((p.flags & F_REVERSE) != 0u) {
      let lpt = (ld_t(local, q) * p.inv_t - a.z) - a.w;
      let inf_row = bitcast<u32>(kl) == 0x7f800000u;
      d = select(select(ps * ((lps - lpt) - kl), vec4f(0.0), ps == vec4f(0.0)) * g,
                 vec4f(0.0), inf_row);
    } else {
      d = (ps - exp((ld_t(local, q) * p.inv_t - a.z) - a.w)) * g;
    }
    if (nan4(vec4f(kl))) { d = vec4f(nan_at(lid)); }
  }
  st_dx(local, q, d);
}

// One workgroup: out = (mean KL over kept rows (0 when none), 1 / max(1, kept), kept, rows with
// +inf KL, rows with NaN KL, 0, 0, 0). Fixed order: deterministic.
@group(0) @binding(0) var<storage, read> fkl: array<f32>;
@group(0) @binding(1) var<storage, read> fmask: array<u32>;
@group(0) @binding(2) var<storage, read_write> fout: array<f32>;
@group(0) @binding(3) var<uniform> pf: Params;

@compute @workgroup_size(WG)
fn distill_finalize(@builtin(local_invocation_index) lid: u32) {
  var acc = vec4f(0.0);
  for (var i = lid; i < pf.n; i += WG) {
    if ((pf.flags & F_MASK) == 0u || keep(fmask[i], pf.flags)) {
      let v = fkl[i];
      let b = bitcast<u32>(v);
      acc += vec4f(v, 1.0, select(0.0, 1.0, b == 0x7f800000u),
                   select(0.0, 1.0, (b & 0x7fffffffu) > 0x7f800000u));
    }
  }
  acc = wg_reduce(acc, lid, false);
  if (lid == 0u) {
    let scale = 1.0 / max(acc.y, 1.0);
    fout[0] = select(acc.x * scale, 0.0, acc.y == 0.0);
    fout[1] = scale;
    fout[2] = acc.y;
    fout[3] = acc.z;
    fout[4] = acc.w;
    fout[5] = 0.0;
    fout[6] = 0.0;
    fout[7] = 0.0;
  }
}

//#section load4
@group(0) @binding(0) var<storage, read> s4: array<vec4f>;
@group(0) @binding(1) var<storage, read> t4: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> dx4: array<vec4f>;

fn ld_s(local: u32, q: u32) -> vec4f { return s4[local * (p.v / 4u) + q]; }
fn ld_t(local: u32, q: u32) -> vec4f { return t4[local * (p.v / 4u) + q]; }
fn st_dx(local: u32, q: u32, d: vec4f) { dx4[local * (p.v / 4u) + q] = d; }

//#section load1
@group(0) @binding(0) var<storage, read> s1: array<f32>;
@group(0) @binding(1) var<storage, read> t1: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx1: array<f32>;

fn ld_s(local: u32, q: u32) -> vec4f {
  var r = vec4f(neg_inf(q));
  for (var k = 0u; k < 4u; k++) { if (4u * q + k < p.v) { r[k] = s1[local * p.v + 4u * q + k]; } }
  return r;
}
fn ld_t(local: u32, q: u32) -> vec4f {
  var r = vec4f(neg_inf(q));
  for (var k = 0u; k < 4u; k++) { if (4u * q + k < p.v) { r[k] = t1[local * p.v + 4u * q + k]; } }
  return r;
}
fn st_dx(local: u32, q: u32, d: vec4f) {
  for (var k = 0u; k < 4u; k++) { if (4u * q + k < p.v) { dx1[local * p.v + 4u * q + k] = d[k]; } }
}
