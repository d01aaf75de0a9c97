// Causal grouped-query attention, fused (FlashAttention-2 style): one dispatch forward, two
// backward, reading q [B, Tq, Hq, D] and k, v [B, Tk, Hkv, D] in place (no head transposes) and
// never materialising the [Tq, Tk] scores. Query i (the last Tq positions of Tk) sees keys
// j <= i + Tk - Tq; query head h reads key/value head h / (Hq / Hkv).
//
// Tiles. A workgroup has BQ·BK threads; thread (r, c) computes one score S[r][c] = q_r·k_c of a
// BQ × BK tile from rows held in workgroup memory, and owns the output columns c, c + BK, ... of
// its query row r (at most MAXC of them, in registers). Rows that many threads read across (the
// tile's keys in `forward`) are padded by PAD floats so that consecutive threads hit different
// banks; rows read along (values in the P·V product) are not.
//
// `forward`: workgroup = (b, h, block of BQ queries); walks key blocks up to the diagonal with an
//   online softmax (running max m and sum l per row, each thread of a row holding the same copy)
//   and writes o and the row's statistics (m, 1/l), all the backward needs of the forward.
// `backward_dq`: workgroup = (b, h, query block): Δ = rowsum(dO ∘ O) for its rows (written for
//   `backward_dkv`), then over key blocks P = exp(S − m)/l, dS = P ⊙ (dO·Vᵀ − Δ), dQ += dS·K.
//   (P from m and 1/l, not from the log-sum-exp L = m + log l: at peaked rows |L| is large and its
//   rounding moved P by ~|L|·6e-8, relatively; S − m is what the forward exponentiated.)
// `backward_dkv`: workgroup = (b, kv head, block of BK keys); thread (c, r) of the transposed tile;
//   walks the G query heads of the group and the query blocks from the diagonal on: dV += Pᵀ·dO,
//   dK += dSᵀ·Q. Each key's gradient is summed by one workgroup: no atomics.
// The backward entry points must run in that order (dkv reads the Δ that dq writes).
//
// The score scale is folded into q as it is loaded, so dK = dSᵀ·(scale·q) needs no extra multiply.
// Masked scores are NEG and their probabilities exactly 0. Key 0 is visible to every query, so a
// row's running max is finite after the first block and every l >= 1.
override D: u32 = 64u;     // head dimension
override BQ: u32 = 16u;    // query rows per tile
override BK: u32 = 16u;    // key rows per tile
override PAD: u32 = 1u;    // floats of padding per row read across threads
override WG: u32 = 256u;   // BQ * BK (set by the host with the others)
override DP: u32 = D + PAD;
override NCK: u32 = (D + BK - 1u) / BK; // register columns per thread in forward and dq
override NCQ: u32 = (D + BQ - 1u) / BQ; // and in dkv
const MAXC: u32 = 16u;     // the host keeps NCK, NCQ <= MAXC
const NEG: f32 = -3.0e38;

struct Params {
  B: u32, tq: u32, tk: u32, hq: u32, hkv: u32, nqb: u32, nkb: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// forward
@group(0) @binding(4) var<storage, read_write> o: array<f32>;        // [B, Tq, Hq, D]
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;    // [B, Hq, Tq, 2]: m, 1/l
// backward_dq
@group(0) @binding(4) var<storage, read> o_in: array<f32>;
@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;          // [B, Tq, Hq, D]
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;   // [B, Hq, Tq]
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;      // [B, Tq, Hq, D]
// backward_dkv (its own numbering: a bind group has no gaps)
@group(0) @binding(4) var<storage, read> stats_k: array<f32>;
@group(0) @binding(5) var<storage, read> dout_k: array<f32>;
@group(0) @binding(6) var<storage, read> delta_k: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;      // [B, Tk, Hkv, D]
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

// forward and backward_dq: query rows along, key rows across
var<workgroup> qs: array<f32, BQ * D>;
var<workgroup> dos: array<f32, BQ * D>;
var<workgroup> ks: array<f32, BK * DP>;
var<workgroup> vs: array<f32, BK * DP>;
var<workgroup> ss: array<f32, BQ * BK>;
var<workgroup> ps: array<f32, BQ * BK>;
// backward_dkv: key rows along, query rows across
var<workgroup> kt: array<f32, BK * D>;
var<workgroup> vt: array<f32, BK * D>;
var<workgroup> qt: array<f32, BQ * DP>;
var<workgroup> dok: array<f32, BQ * DP>;
var<workgroup> pt: array<f32, BK * BQ>;
var<workgroup> dsk: array<f32, BK * BQ>;
var<workgroup> mrow: array<f32, BQ>;
var<workgroup> irow: array<f32, BQ>;
var<workgroup> drow: array<f32, BQ>;

fn block(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

// Element d of row t, head h of a [B, T, H, D] tensor.
fn at(b: u32, t: u32, T: u32, h: u32, H: u32) -> u32 { return ((b * T + t) * H + h) * D; }

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hq * p.nqb) { return; }
  let qb = p.nqb - 1u - w % p.nqb; // the longest rows (last blocks) are scheduled first
  let bh = w / p.nqb;
  let b = bh / p.hq;
  let h = bh % p.hq;
  let kvh = h / (p.hq / p.hkv);
  let tq = p.tq;
  let tk = p.tk;
  let q0 = qb * BQ;
  let r = lid / BK;
  let c = lid % BK;
  let i = q0 + r;
  for (var e = lid; e < BQ * D; e += WG) {
    let row = q0 + e / D;
    qs[e] = select(0.0, q[at(b, min(row, tq - 1u), tq, h, p.hq) + e % D] * p.scale, row < tq);
  }
  var m = NEG;
  var l = 0.0;
  var acc: array<f32, MAXC>;
  for (var x = 0u; x < NCK; x++) { acc[x] = 0.0; }
  // keys visible to the block's last valid row, exclusive
  let kend = min(q0 + BQ, tq) + tk - tq;
  for (var j0 = 0u; j0 < kend; j0 += BK) {
    workgroupBarrier(); // the previous block's reads of ks, vs, ps are done
    for (var e = lid; e < BK * D; e += WG) {
      let key = j0 + e / D;
      let src = at(b, min(key, tk - 1u), tk, kvh, p.hkv) + e % D;
      let ok = key < tk;
      ks[(e / D) * DP + e % D] = select(0.0, k[src], ok);
      vs[e] = select(0.0, v[src], ok);
    }
    workgroupBarrier();
    let j = j0 + c;
    let visible = j < tk && j + tq <= i + tk;
    var s = NEG;
    if (visible) {
      var dotv = 0.0;
      for (var d = 0u; d < D; d++) { dotv += qs[r * D + d] * ks[c * DP + d]; }
      s = dotv;
    }
    ss[lid] = s;
    workgroupBarrier();
    var mt = m;
    for (var cc = 0u; cc < BK; cc++) { mt = max(mt, ss[r * BK + cc]); }
    ps[lid] = select(0.0, exp(s - mt), visible);
    workgroupBarrier();
    let alpha = exp(m - mt);
    l *= alpha;
    for (var x = 0u; x < NCK; x++) { acc[x] *= alpha; }
    for (var cc = 0u; cc < BK; cc++) {
      let pv = ps[r * BK + cc];
      l += pv;
      for (var x = 0u; x < NCK; x++) {
        let col = c + x * BK;
        if (col < D) { acc[x] += pv * vs[cc * D + col]; }
      }
    }
    m = mt;
  }
  if (i < tq) {
    let base = at(b, i, tq, h, p.hq);
    let inv = 1.0 / l;
    for (var x = 0u; x < NCK; x++) {
      let col = c + x * BK;
      if (col < D) { o[base + col] = acc[x] * inv; }
    }
    if (c == 0u) {
      let row = (b * p.hq + h) * tq + i;
      stats[2u * row] = m;
      stats[2u * row + 1u] = inv;
    }
  }
}

@compute @workgroup_size(WG)
fn backward_dq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hq * p.nqb) { return; }
  let qb = p.nqb - 1u - w % p.nqb;
  let bh = w / p.nqb;
  let b = bh / p.hq;
  let h = bh % p.hq;
  let kvh = h / (p.hq / p.hkv);
  let tq = p.tq;
  let tk = p.tk;
  let q0 = qb * BQ;
  let r = lid / BK;
  let c = lid % BK;
  let i = q0 + r;
  for (var e = lid; e < BQ * D; e += WG) {
    let row = q0 + e / D;
    let src = at(b, min(row, tq - 1u), tq, h, p.hq) + e % D;
    let ok = row < tq;
    qs[e] = select(0.0, q[src] * p.scale, ok);
    dos[e] = select(0.0, dout[src], ok);
  }
  // Δ_r = Σ_d dO·O: partial sums over this thread's columns, then over the row's BK threads
  var part = 0.0;
  if (i < tq) {
    let base = at(b, i, tq, h, p.hq);
    for (var x = 0u; x < NCK; x++) {
      let col = c + x * BK;
      if (col < D) { part += dout[base + col] * o_in[base + col]; }
    }
  }
  ss[lid] = part;
  workgroupBarrier();
  var dlt = 0.0;
  for (var cc = 0u; cc < BK; cc++) { dlt += ss[r * BK + cc]; }
  let row_ok = i < tq;
  let srow = 2u * ((b * p.hq + h) * tq + min(i, tq - 1u));
  let mi = stats_in[srow];
  let inv_l = stats_in[srow + 1u];
  if (row_ok && c == 0u) { delta[(b * p.hq + h) * tq + i] = dlt; }
  var acc: array<f32, MAXC>;
  for (var x = 0u; x < NCK; x++) { acc[x] = 0.0; }
  let kend = min(q0 + BQ, tq) + tk - tq;
  for (var j0 = 0u; j0 < kend; j0 += BK) {
    workgroupBarrier(); // reads of ss (Δ, previous dS) and ks are done
    for (var e = lid; e < BK * D; e += WG) {
      let key = j0 + e / D;
      let src = at(b, min(key, tk - 1u), tk, kvh, p.hkv) + e % D;
      let ok = key < tk;
      let dst = (e / D) * DP + e % D;
      ks[dst] = select(0.0, k[src], ok);
      vs[dst] = select(0.0, v[src], ok);
    }
    workgroupBarrier();
    let j = j0 + c;
    var ds = 0.0;
    if (row_ok && j < tk && j + tq <= i + tk) {
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d++) {
        s += qs[r * D + d] * ks[c * DP + d];
        dp += dos[r * D + d] * vs[c * DP + d];
      }
      ds = exp(s - mi) * inv_l * (dp - dlt);
    }
    ss[lid] = ds;
    workgroupBarrier();
    for (var cc = 0u; cc < BK; cc++) {
      let g = ss[r * BK + cc];
      for (var x = 0u; x < NCK; x++) {
        let col = c + x * BK;
        if (col < D) { acc[x] += g * ks[cc * DP + col]; }
      }
    }
  }
  if (row_ok) {
    let base = at(b, i, tq, h, p.hq);
    for (var x = 0u; x < NCK; x++) {
      let col = c + x * BK;
      if (col < D) { dq[base + col] = acc[x] * p.scale; }
    }
  }
}

@compute @workgroup_size(WG)
fn backward_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hkv * p.nkb) { return; }
  let kb = w % p.nkb;
  let bh = w / p.nkb;
  let b = bh / p.hkv;
  let kvh = bh % p.hkv;
  let G = p.hq / p.hkv;
  let tq = p.tq;
  let tk = p.tk;
  let j0 = kb * BK;
  let c = lid / BQ; // key row of this thread
  let r = lid % BQ; // query row of its scores; also its column offset in dK, dV
  let j = j0 + c;
  for (var e = lid; e < BK * D; e += WG) {
    let key = j0 + e / D;
    let src = at(b, min(key, tk - 1u), tk, kvh, p.hkv) + e % D;
    let ok = key < tk;
    kt[e] = select(0.0, k[src], ok);
    vt[e] = select(0.0, v[src], ok);
  }
  var gk: array<f32, MAXC>;
  var gv: array<f32, MAXC>;
  for (var x = 0u; x < NCQ; x++) { gk[x] = 0.0; gv[x] = 0.0; }
  // first query that sees key j0: j0 + tq <= i + tk
  let qstart = (select(0u, j0 + tq - tk, j0 + tq > tk) / BQ) * BQ;
  for (var g = 0u; g < G; g++) {
    let h = kvh * G + g;
    for (var q0 = qstart; q0 < tq; q0 += BQ) {
      workgroupBarrier(); // the previous block's reads of qt, dok, pt, dsk, mrow, irow are done
      for (var e = lid; e < BQ * D; e += WG) {
        let row = q0 + e / D;
        let src = at(b, min(row, tq - 1u), tq, h, p.hq) + e % D;
        let ok = row < tq;
        let dst = (e / D) * DP + e % D;
        qt[dst] = select(0.0, q[src] * p.scale, ok);
        dok[dst] = select(0.0, dout_k[src], ok);
      }
      for (var e = lid; e < BQ; e += WG) {
        let row = min(q0 + e, tq - 1u);
        let srow = 2u * ((b * p.hq + h) * tq + row);
        mrow[e] = stats_k[srow];
        irow[e] = stats_k[srow + 1u];
        drow[e] = delta_k[(b * p.hq + h) * tq + row];
      }
      workgroupBarrier();
      let i = q0 + r;
      var pr = 0.0;
      var ds = 0.0;
      if (i < tq && j < tk && j + tq <= i + tk) {
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) {
          s += qt[r * DP + d] * kt[c * D + d];
          dp += dok[r * DP + d] * vt[c * D + d];
        }
        pr = exp(s - mrow[r]) * irow[r];
        ds = pr * (dp - drow[r]);
      }
      pt[lid] = pr;
      dsk[lid] = ds;
      workgroupBarrier();
      for (var rr = 0u; rr < BQ; rr++) {
        let pv = pt[c * BQ + rr];
        let g2 = dsk[c * BQ + rr];
        for (var x = 0u; x < NCQ; x++) {
          let col = r + x * BQ;
          if (col < D) {
            gv[x] += pv * dok[rr * DP + col];
            gk[x] += g2 * qt[rr * DP + col];
          }
        }
      }
    }
  }
  if (j < tk) {
    let base = at(b, j, tk, kvh, p.hkv);
    for (var x = 0u; x < NCQ; x++) {
      let col = r + x * BQ;
      if (col < D) {
        dk[base + col] = gk[x];
        dv[base + col] = gv[x];
      }
    }
  }
}
