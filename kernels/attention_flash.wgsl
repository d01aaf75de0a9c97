// Causal grouped-query attention, fused and register-tiled (FlashAttention-2 style; version 2 of
// kernels/attention_fused.wgsl, same semantics and operands): q [B, Tq, Hq, D] and k, v
// [B, Tk, Hkv, D] read in place as vec4 (D a multiple of 4), query i (the last Tq positions of Tk)
// sees keys j <= i + Tk − Tq, query head h reads key/value head h / G with G = Hq / Hkv.
//
// Stacked rows. A workgroup serves one (b, kv head) and walks the G query heads of that group
// together: stacked row ρ = i·G + g is query i of head kvh·G + g, which is also where that row sits
// in q's memory ([B, Tq, Hq, D] puts the G heads of a group side by side). So every K/V tile loaded
// serves G·(rows) queries, and the per-row statistics ([B, Tq, Hq]) are indexed by the same number.
//
// Thread tiles. TR × TC threads; thread (tr, tc) owns 4 "rows" 4·tr + x (x < 4) and 4 "columns"
// tc + y·TC (y < 4, strided so that neighbouring threads read neighbouring rows of a tile in
// workgroup memory), and the D/4 vec4 columns tc + y·TC (y < DV) of the outputs. A score micro-tile
// is 4 × 4, accumulated over D by vec4: per vec4 of D, 8 vec4 loads feed 64 FMAs (v1: two loads per
// FMA). So ROWS = 4·TR, COLS = 4·TC and D = 4·DV·TC.
//   forward, backward_dq: rows = stacked query rows, columns = keys.
//   backward_dkv: rows = keys, columns = stacked query rows.
// Accumulators are module-scope arrays indexed only through literal indices (helpers called with
// literal y): naga spills a dynamically indexed private array to memory.
//
// `forward`: workgroup = (b, kvh, block of ROWS stacked rows), longest blocks first. Per key tile
//   (only those up to the block's last visible key; the mask is applied only on tiles that need
//   it): S = (scale·Q)·Kᵀ in registers, the row max across the TC threads of a row through `red`,
//   P = exp(S − m) to workgroup memory, O = α·O + P·V with V loaded into K's buffer once every
//   thread's S is done. Each thread reads its rows' whole P for P·V, so it sums l itself.
//   Writes o and the rows' (m, 1/l).
// `backward_dq`: same workgroups. Δ = rowsum(dO ∘ O) for its rows (written for dkv), then per key
//   tile S and dP = dO·Vᵀ together, dS = P ⊙ (dP − Δ) with P = exp(S − m)·(1/l), dQ += dS·K.
// `backward_dkv`: workgroup = (b, kvh, block of ROWS keys); walks the stacked rows from the first
//   that sees the block: Sᵀ, dPᵀ, Pᵀ, dSᵀ, then dV += Pᵀ·dO, dK += dSᵀ·(scale·Q). Each key's
//   gradient is summed by one workgroup, over the G heads of its group: no atomics.
// The backward entry points run in that order (dkv reads the Δ that dq writes).
//
// Numerics as v1: the scale is folded into q as it is loaded; P from m and 1/l (not from m + log l);
// masked scores are NEG and their probabilities exactly 0; key 0 is visible to every query, so the
// first key tile gives every row a finite max and l >= 1.
override D: u32 = 64u;
override TR: u32 = 8u;      // thread rows
override TC: u32 = 8u;      // thread columns
override DV: u32 = 2u;      // output vec4 per thread and row: D / (4·TC), 1, 2 or 4
override PAD: u32 = 1u;     // vec4 of padding per tile row (0 or 1)
override WG: u32 = 64u;     // TR·TC (set by the host with the others)
override D4: u32 = D / 4u;
override DP4: u32 = D4 + PAD;   // vec4 per row of a Q/K/V/dO tile
override PR: u32 = TC + PAD;    // vec4 per row of a P tile (COLS floats + padding)
override ROWS: u32 = 4u * TR;
override COLS: u32 = 4u * TC;
const NEG: f32 = -3.0e38;

struct Params {
  B: u32, tq: u32, tk: u32, hq: u32, hkv: u32, nrb: u32, nkb: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;
// forward
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>; // [B, Tq, Hq, D]
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;   // [B, Tq, Hq, 2]: m, 1/l
// backward_dq
@group(0) @binding(4) var<storage, read> o_in: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> stats_in: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<vec4<f32>>;  // [B, Tq, Hq, D]
@group(0) @binding(7) var<storage, read_write> delta: array<f32>; // [B, Tq, Hq]
@group(0) @binding(8) var<storage, read_write> dq: array<vec4<f32>>;
// backward_dkv (its own numbering: a bind group has no gaps)
@group(0) @binding(4) var<storage, read> stats_k: array<f32>;
@group(0) @binding(5) var<storage, read> dout_k: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> delta_k: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<vec4<f32>>; // [B, Tk, Hkv, D]
@group(0) @binding(8) var<storage, read_write> dv: array<vec4<f32>>;

// Tiles: `rt*` hold ROWS rows of D, `ct*` COLS rows of D, `pt*` ROWS rows of COLS scores.
var<workgroup> rt0: array<vec4<f32>, ROWS * DP4>; // forward, dq: scale·Q; dkv: K
var<workgroup> rt1: array<vec4<f32>, ROWS * DP4>; // dq: dO; dkv: V
var<workgroup> ct0: array<vec4<f32>, COLS * DP4>; // forward: K, then V; dq: K; dkv: scale·Q
var<workgroup> ct1: array<vec4<f32>, COLS * DP4>; // dq: V; dkv: dO
var<workgroup> pt0: array<vec4<f32>, ROWS * PR>;  // forward: P; dq: dS (first Δ's partial sums); dkv: Pᵀ
var<workgroup> pt1: array<vec4<f32>, ROWS * PR>;  // dkv: dSᵀ
var<workgroup> red: array<f32, ROWS * TC>;        // forward: the rows' partial maxima
var<workgroup> mcol: array<f32, COLS>;            // dkv: m, 1/l, Δ of the tile's query rows
var<workgroup> icol: array<f32, COLS>;
var<workgroup> dcol: array<f32, COLS>;

// [4·x + y]: row x, output vec4 y of this thread
var<private> acc: array<vec4<f32>, 16>; // forward: O; dq: dQ; dkv: dV
var<private> acc2: array<vec4<f32>, 16>; // dkv: dK

fn block(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

// vec4 0 of stacked row ρ of (b, kvh) in a [B, Tq, Hq, D] tensor; ρ·… is also its statistics' row.
fn qrow(b: u32, kvh: u32, rho: u32) -> u32 {
  let G = p.hq / p.hkv;
  return (b * p.tq + rho / G) * p.hq + kvh * G + rho % G;
}

// row of key j of kv head kvh in a [B, Tk, Hkv, D] tensor
fn krow(b: u32, kvh: u32, j: u32) -> u32 { return (b * p.tk + j) * p.hkv + kvh; }

fn zero_acc() {
  acc = array<vec4<f32>, 16>();
  acc2 = array<vec4<f32>, 16>();
}

// acc[4x + y] += a[x] · w for the 4 rows x (y a literal at every call)
fn axpy(y: u32, a: vec4<f32>, w: vec4<f32>) {
  acc[y] += a.x * w;
  acc[4u + y] += a.y * w;
  acc[8u + y] += a.z * w;
  acc[12u + y] += a.w * w;
}

fn axpy2(y: u32, a: vec4<f32>, w: vec4<f32>) {
  acc2[y] += a.x * w;
  acc2[4u + y] += a.y * w;
  acc2[8u + y] += a.z * w;
  acc2[12u + y] += a.w * w;
}

// acc += a ⊗ (row `row` of ct0's output columns): one column of the tile, 4 rows
fn accum_ct0(a: vec4<f32>, row: u32, tc: u32) {
  let base = row * DP4 + tc;
  axpy(0u, a, ct0[base]);
  if (DV > 1u) { axpy(1u, a, ct0[base + TC]); }
  if (DV > 2u) { axpy(2u, a, ct0[base + 2u * TC]); axpy(3u, a, ct0[base + 3u * TC]); }
}

// dkv: acc += a ⊗ dO row, acc2 += b ⊗ Q row
fn accum_dkv(a: vec4<f32>, bb: vec4<f32>, row: u32, tc: u32) {
  let base = row * DP4 + tc;
  axpy(0u, a, ct1[base]);
  axpy2(0u, bb, ct0[base]);
  if (DV > 1u) { axpy(1u, a, ct1[base + TC]); axpy2(1u, bb, ct0[base + TC]); }
  if (DV > 2u) {
    axpy(2u, a, ct1[base + 2u * TC]);
    axpy2(2u, bb, ct0[base + 2u * TC]);
    axpy(3u, a, ct1[base + 3u * TC]);
    axpy2(3u, bb, ct0[base + 3u * TC]);
  }
}

fn scale_col(y: u32, al: vec4<f32>) {
  acc[y] *= al.x;
  acc[4u + y] *= al.y;
  acc[8u + y] *= al.z;
  acc[12u + y] *= al.w;
}

fn scale_rows(al: vec4<f32>) {
  scale_col(0u, al);
  if (DV > 1u) { scale_col(1u, al); }
  if (DV > 2u) { scale_col(2u, al); scale_col(3u, al); }
}

// Stores row x (a literal) of acc times `f` to `out` at vec4 `base` + the thread's columns; in
// dkv also acc2 to dk. Row masks are the caller's.
fn store_o(x: u32, base: u32, tc: u32, f: f32) {
  o[base + tc] = acc[4u * x] * f;
  if (DV > 1u) { o[base + tc + TC] = acc[4u * x + 1u] * f; }
  if (DV > 2u) {
    o[base + tc + 2u * TC] = acc[4u * x + 2u] * f;
    o[base + tc + 3u * TC] = acc[4u * x + 3u] * f;
  }
}

fn store_dq(x: u32, base: u32, tc: u32, f: f32) {
  dq[base + tc] = acc[4u * x] * f;
  if (DV > 1u) { dq[base + tc + TC] = acc[4u * x + 1u] * f; }
  if (DV > 2u) {
    dq[base + tc + 2u * TC] = acc[4u * x + 2u] * f;
    dq[base + tc + 3u * TC] = acc[4u * x + 3u] * f;
  }
}

fn store_dkv(x: u32, base: u32, tc: u32) {
  dv[base + tc] = acc[4u * x];
  dk[base + tc] = acc2[4u * x];
  if (DV > 1u) {
    dv[base + tc + TC] = acc[4u * x + 1u];
    dk[base + tc + TC] = acc2[4u * x + 1u];
  }
  if (DV > 2u) {
    dv[base + tc + 2u * TC] = acc[4u * x + 2u];
    dk[base + tc + 2u * TC] = acc2[4u * x + 2u];
    dv[base + tc + 3u * TC] = acc[4u * x + 3u];
    dk[base + tc + 3u * TC] = acc2[4u * x + 3u];
  }
}

// qrow of the 4 stacked rows ρ (clamped to R − 1)
fn qrows(b: u32, kvh: u32, rho: vec4<u32>, R: u32) -> vec4<u32> {
  let G = p.hq / p.hkv;
  let r = min(rho, vec4(R - 1u));
  return (b * p.tq + r / G) * p.hq + kvh * G + r % G;
}

// The 4 strided columns tc + y·TC as a vec4 of indices.
fn cols(c0: u32) -> vec4<u32> { return vec4(c0, c0 + TC, c0 + 2u * TC, c0 + 3u * TC); }

// Writes the 4 scores of row `row` (columns tc + y·TC) into a P tile.
fn put0(row: u32, tc: u32, s: vec4<f32>) {
  let c = cols(tc);
  let base = row * PR;
  pt0[base + c.x / 4u][c.x % 4u] = s.x;
  pt0[base + c.y / 4u][c.y % 4u] = s.y;
  pt0[base + c.z / 4u][c.z % 4u] = s.z;
  pt0[base + c.w / 4u][c.w % 4u] = s.w;
}

fn put1(row: u32, tc: u32, s: vec4<f32>) {
  let c = cols(tc);
  let base = row * PR;
  pt1[base + c.x / 4u][c.x % 4u] = s.x;
  pt1[base + c.y / 4u][c.y % 4u] = s.y;
  pt1[base + c.z / 4u][c.z % 4u] = s.z;
  pt1[base + c.w / 4u][c.w % 4u] = s.w;
}

// dq: this thread's part of Δ = Σ dO ∘ O over its output columns of row `row` (vec4 0 of the row)
fn delta_part(row: u32, tc: u32) -> f32 {
  var part = 0.0;
  for (var y = 0u; y < DV; y++) {
    let c = row * D4 + tc + y * TC;
    part += dot(dout[c], o_in[c]);
  }
  return part;
}

// dq: the TC parts of tile row `r` (in pt0)
fn delta_sum(r: u32) -> f32 {
  var sum = 0.0;
  for (var t = 0u; t < TC; t++) { sum += pt0[r * PR + t / 4u][t % 4u]; }
  return sum;
}

fn hmax(x: vec4<f32>) -> f32 { return max(max(x.x, x.y), max(x.z, x.w)); }

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hkv * p.nrb) { return; }
  let rb = p.nrb - 1u - w % p.nrb; // the longest blocks (the last rows) first
  let bk = w / p.nrb;
  let b = bk / p.hkv;
  let kvh = bk % p.hkv;
  let G = p.hq / p.hkv;
  let R = p.tq * G;
  let tk = p.tk;
  let off = tk - p.tq;
  let r0 = rb * ROWS;
  let tr = lid / TC;
  let tc = lid % TC;
  for (var e = lid; e < ROWS * D4; e += WG) {
    let rho = r0 + e / D4;
    let val = q[qrow(b, kvh, min(rho, R - 1u)) * D4 + e % D4] * p.scale;
    rt0[(e / D4) * DP4 + e % D4] = select(vec4(0.0), val, rho < R);
  }
  zero_acc();
  var m = vec4(NEG);
  var l = vec4(0.0);
  // query of each of the thread's rows, and the keys visible to the block's last valid row
  let iq = (vec4(r0 + 4u * tr) + vec4(0u, 1u, 2u, 3u)) / G;
  let kend = (min(r0 + ROWS, R) - 1u) / G + off + 1u;
  let i0 = r0 / G;
  for (var j0 = 0u; j0 < kend; j0 += COLS) {
    workgroupBarrier(); // the previous tile's reads of ct0 (V) and pt0 are done
    for (var e = lid; e < COLS * D4; e += WG) {
      let j = j0 + e / D4;
      let val = k[krow(b, kvh, min(j, tk - 1u)) * D4 + e % D4];
      ct0[(e / D4) * DP4 + e % D4] = select(vec4(0.0), val, j < tk);
    }
    workgroupBarrier();
    var s0 = vec4(0.0);
    var s1 = vec4(0.0);
    var s2 = vec4(0.0);
    var s3 = vec4(0.0);
    let qb = 4u * tr * DP4;
    for (var d = 0u; d < D4; d++) {
      let km = mat4x4<f32>(ct0[tc * DP4 + d], ct0[(tc + TC) * DP4 + d],
                           ct0[(tc + 2u * TC) * DP4 + d], ct0[(tc + 3u * TC) * DP4 + d]);
      s0 += rt0[qb + d] * km;
      s1 += rt0[qb + DP4 + d] * km;
      s2 += rt0[qb + 2u * DP4 + d] * km;
      s3 += rt0[qb + 3u * DP4 + d] * km;
    }
    // the mask, only where some key of the tile is past some row's diagonal or past Tk
    let masked = j0 + COLS > tk || j0 + COLS > i0 + off + 1u;
    let jc = vec4(j0) + cols(tc);
    let inside = jc < vec4(tk);
    let v0 = inside & (jc <= vec4(iq.x + off));
    let v1 = inside & (jc <= vec4(iq.y + off));
    let v2 = inside & (jc <= vec4(iq.z + off));
    let v3 = inside & (jc <= vec4(iq.w + off));
    if (masked) {
      s0 = select(vec4(NEG), s0, v0);
      s1 = select(vec4(NEG), s1, v1);
      s2 = select(vec4(NEG), s2, v2);
      s3 = select(vec4(NEG), s3, v3);
    }
    let rr = 4u * tr * TC + tc;
    red[rr] = hmax(s0);
    red[rr + TC] = hmax(s1);
    red[rr + 2u * TC] = hmax(s2);
    red[rr + 3u * TC] = hmax(s3);
    workgroupBarrier(); // every thread's S is done (ct0 free) and the partial maxima are in
    for (var e = lid; e < COLS * D4; e += WG) {
      let j = j0 + e / D4;
      let val = v[krow(b, kvh, min(j, tk - 1u)) * D4 + e % D4];
      ct0[(e / D4) * DP4 + e % D4] = select(vec4(0.0), val, j < tk);
    }
    var mt = m;
    for (var t = 0u; t < TC; t++) {
      let base = 4u * tr * TC + t;
      mt = max(mt, vec4(red[base], red[base + TC], red[base + 2u * TC], red[base + 3u * TC]));
    }
    var p0 = exp(s0 - mt.x);
    var p1 = exp(s1 - mt.y);
    var p2 = exp(s2 - mt.z);
    var p3 = exp(s3 - mt.w);
    if (masked) {
      p0 = select(vec4(0.0), p0, v0);
      p1 = select(vec4(0.0), p1, v1);
      p2 = select(vec4(0.0), p2, v2);
      p3 = select(vec4(0.0), p3, v3);
    }
    put0(4u * tr, tc, p0);
    put0(4u * tr + 1u, tc, p1);
    put0(4u * tr + 2u, tc, p2);
    put0(4u * tr + 3u, tc, p3);
    let al = exp(m - mt);
    m = mt;
    l *= al;
    scale_rows(al);
    workgroupBarrier(); // P and V are in
    let pb = 4u * tr * PR;
    for (var c4 = 0u; c4 < TC; c4++) {
      let pm = transpose(mat4x4<f32>(pt0[pb + c4], pt0[pb + PR + c4], pt0[pb + 2u * PR + c4],
                                     pt0[pb + 3u * PR + c4]));
      l += pm[0] + pm[1] + pm[2] + pm[3];
      accum_ct0(pm[0], 4u * c4, tc);
      accum_ct0(pm[1], 4u * c4 + 1u, tc);
      accum_ct0(pm[2], 4u * c4 + 2u, tc);
      accum_ct0(pm[3], 4u * c4 + 3u, tc);
    }
  }
  let inv = 1.0 / l;
  let rho = vec4(r0 + 4u * tr) + vec4(0u, 1u, 2u, 3u);
  let rows = qrows(b, kvh, rho, R);
  let ok = rho < vec4(R);
  if (ok.x) { store_o(0u, rows.x * D4, tc, inv.x); }
  if (ok.y) { store_o(1u, rows.y * D4, tc, inv.y); }
  if (ok.z) { store_o(2u, rows.z * D4, tc, inv.z); }
  if (ok.w) { store_o(3u, rows.w * D4, tc, inv.w); }
  if (tc == 0u) {
    if (ok.x) { stats[2u * rows.x] = m.x; stats[2u * rows.x + 1u] = inv.x; }
    if (ok.y) { stats[2u * rows.y] = m.y; stats[2u * rows.y + 1u] = inv.y; }
    if (ok.z) { stats[2u * rows.z] = m.z; stats[2u * rows.z + 1u] = inv.z; }
    if (ok.w) { stats[2u * rows.w] = m.w; stats[2u * rows.w + 1u] = inv.w; }
  }
}

@compute @workgroup_size(WG)
fn backward_dq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hkv * p.nrb) { return; }
  let rb = p.nrb - 1u - w % p.nrb;
  let bk = w / p.nrb;
  let b = bk / p.hkv;
  let kvh = bk % p.hkv;
  let G = p.hq / p.hkv;
  let R = p.tq * G;
  let tk = p.tk;
  let off = tk - p.tq;
  let r0 = rb * ROWS;
  let tr = lid / TC;
  let tc = lid % TC;
  for (var e = lid; e < ROWS * D4; e += WG) {
    let rho = r0 + e / D4;
    let src = qrow(b, kvh, min(rho, R - 1u)) * D4 + e % D4;
    let ok = rho < R;
    let dst = (e / D4) * DP4 + e % D4;
    rt0[dst] = select(vec4(0.0), q[src] * p.scale, ok);
    rt1[dst] = select(vec4(0.0), dout[src], ok);
  }
  // Δ = rowsum(dO ∘ O): this thread's output columns, then the TC threads of each row (in pt0)
  let rho = vec4(r0 + 4u * tr) + vec4(0u, 1u, 2u, 3u);
  let rows = qrows(b, kvh, rho, R);
  let ok = rho < vec4(R);
  let mi = vec4(stats_in[2u * rows.x], stats_in[2u * rows.y], stats_in[2u * rows.z],
                stats_in[2u * rows.w]);
  let il = vec4(stats_in[2u * rows.x + 1u], stats_in[2u * rows.y + 1u],
                stats_in[2u * rows.z + 1u], stats_in[2u * rows.w + 1u]);
  let pc = 4u * tr * PR + tc / 4u;
  pt0[pc][tc % 4u] = delta_part(rows.x, tc);
  pt0[pc + PR][tc % 4u] = delta_part(rows.y, tc);
  pt0[pc + 2u * PR][tc % 4u] = delta_part(rows.z, tc);
  pt0[pc + 3u * PR][tc % 4u] = delta_part(rows.w, tc);
  workgroupBarrier();
  let dl = vec4(delta_sum(4u * tr), delta_sum(4u * tr + 1u), delta_sum(4u * tr + 2u),
                delta_sum(4u * tr + 3u));
  if (tc == 0u) {
    if (ok.x) { delta[rows.x] = dl.x; }
    if (ok.y) { delta[rows.y] = dl.y; }
    if (ok.z) { delta[rows.z] = dl.z; }
    if (ok.w) { delta[rows.w] = dl.w; }
  }
  zero_acc();
  let iq = (vec4(r0 + 4u * tr) + vec4(0u, 1u, 2u, 3u)) / G;
  let kend = (min(r0 + ROWS, R) - 1u) / G + off + 1u;
  let i0 = r0 / G;
  for (var j0 = 0u; j0 < kend; j0 += COLS) {
    workgroupBarrier(); // the reads of pt0 (Δ parts, previous dS) and ct0 are done
    for (var e = lid; e < COLS * D4; e += WG) {
      let j = j0 + e / D4;
      let src = krow(b, kvh, min(j, tk - 1u)) * D4 + e % D4;
      let dst = (e / D4) * DP4 + e % D4;
      ct0[dst] = select(vec4(0.0), k[src], j < tk);
      ct1[dst] = select(vec4(0.0), v[src], j < tk);
    }
    workgroupBarrier();
    var s0 = vec4(0.0);
    var s1 = vec4(0.0);
    var s2 = vec4(0.0);
    var s3 = vec4(0.0);
    var g0 = vec4(0.0);
    var g1 = vec4(0.0);
    var g2 = vec4(0.0);
    var g3 = vec4(0.0);
    let qb = 4u * tr * DP4;
    for (var d = 0u; d < D4; d++) {
      let km = mat4x4<f32>(ct0[tc * DP4 + d], ct0[(tc + TC) * DP4 + d],
                           ct0[(tc + 2u * TC) * DP4 + d], ct0[(tc + 3u * TC) * DP4 + d]);
      let vm = mat4x4<f32>(ct1[tc * DP4 + d], ct1[(tc + TC) * DP4 + d],
                           ct1[(tc + 2u * TC) * DP4 + d], ct1[(tc + 3u * TC) * DP4 + d]);
      s0 += rt0[qb + d] * km;
      s1 += rt0[qb + DP4 + d] * km;
      s2 += rt0[qb + 2u * DP4 + d] * km;
      s3 += rt0[qb + 3u * DP4 + d] * km;
      g0 += rt1[qb + d] * vm;
      g1 += rt1[qb + DP4 + d] * vm;
      g2 += rt1[qb + 2u * DP4 + d] * vm;
      g3 += rt1[qb + 3u * DP4 + d] * vm;
    }
    var p0 = exp(s0 - mi.x) * il.x;
    var p1 = exp(s1 - mi.y) * il.y;
    var p2 = exp(s2 - mi.z) * il.z;
    var p3 = exp(s3 - mi.w) * il.w;
    if (j0 + COLS > tk || j0 + COLS > i0 + off + 1u) {
      let jc = vec4(j0) + cols(tc);
      let inside = jc < vec4(tk);
      p0 = select(vec4(0.0), p0, inside & (jc <= vec4(iq.x + off)));
      p1 = select(vec4(0.0), p1, inside & (jc <= vec4(iq.y + off)));
      p2 = select(vec4(0.0), p2, inside & (jc <= vec4(iq.z + off)));
      p3 = select(vec4(0.0), p3, inside & (jc <= vec4(iq.w + off)));
    }
    put0(4u * tr, tc, p0 * (g0 - dl.x));
    put0(4u * tr + 1u, tc, p1 * (g1 - dl.y));
    put0(4u * tr + 2u, tc, p2 * (g2 - dl.z));
    put0(4u * tr + 3u, tc, p3 * (g3 - dl.w));
    workgroupBarrier();
    let pb = 4u * tr * PR;
    for (var c4 = 0u; c4 < TC; c4++) {
      let gm = transpose(mat4x4<f32>(pt0[pb + c4], pt0[pb + PR + c4], pt0[pb + 2u * PR + c4],
                                     pt0[pb + 3u * PR + c4]));
      accum_ct0(gm[0], 4u * c4, tc);
      accum_ct0(gm[1], 4u * c4 + 1u, tc);
      accum_ct0(gm[2], 4u * c4 + 2u, tc);
      accum_ct0(gm[3], 4u * c4 + 3u, tc);
    }
  }
  if (ok.x) { store_dq(0u, rows.x * D4, tc, p.scale); }
  if (ok.y) { store_dq(1u, rows.y * D4, tc, p.scale); }
  if (ok.z) { store_dq(2u, rows.z * D4, tc, p.scale); }
  if (ok.w) { store_dq(3u, rows.w * D4, tc, p.scale); }
}

@compute @workgroup_size(WG)
fn backward_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let w = block(wid, nwg);
  if (w >= p.B * p.hkv * p.nkb) { return; }
  let kb = w % p.nkb; // the first keys (seen by the most rows) first
  let bk = w / p.nkb;
  let b = bk / p.hkv;
  let kvh = bk % p.hkv;
  let G = p.hq / p.hkv;
  let R = p.tq * G;
  let tk = p.tk;
  let off = tk - p.tq;
  let j0 = kb * ROWS;
  let tr = lid / TC;
  let tc = lid % TC;
  for (var e = lid; e < ROWS * D4; e += WG) {
    let j = j0 + e / D4;
    let src = krow(b, kvh, min(j, tk - 1u)) * D4 + e % D4;
    let dst = (e / D4) * DP4 + e % D4;
    rt0[dst] = select(vec4(0.0), k[src], j < tk);
    rt1[dst] = select(vec4(0.0), v[src], j < tk);
  }
  zero_acc();
  let jr = vec4(j0 + 4u * tr) + vec4(0u, 1u, 2u, 3u); // this thread's keys
  // first stacked row that sees key j0: query j0 − off
  let rstart = ((select(0u, j0 - off, j0 > off) * G) / COLS) * COLS;
  for (var r0 = rstart; r0 < R; r0 += COLS) {
    workgroupBarrier(); // the previous tile's reads of ct*, pt*, the statistics are done
    for (var e = lid; e < COLS * D4; e += WG) {
      let rho = r0 + e / D4;
      let src = qrow(b, kvh, min(rho, R - 1u)) * D4 + e % D4;
      let ok = rho < R;
      let dst = (e / D4) * DP4 + e % D4;
      ct0[dst] = select(vec4(0.0), q[src] * p.scale, ok);
      ct1[dst] = select(vec4(0.0), dout_k[src], ok);
    }
    for (var e = lid; e < COLS; e += WG) {
      let row = qrow(b, kvh, min(r0 + e, R - 1u));
      mcol[e] = stats_k[2u * row];
      icol[e] = stats_k[2u * row + 1u];
      dcol[e] = delta_k[row];
    }
    workgroupBarrier();
    var s0 = vec4(0.0);
    var s1 = vec4(0.0);
    var s2 = vec4(0.0);
    var s3 = vec4(0.0);
    var g0 = vec4(0.0);
    var g1 = vec4(0.0);
    var g2 = vec4(0.0);
    var g3 = vec4(0.0);
    let kb4 = 4u * tr * DP4;
    for (var d = 0u; d < D4; d++) {
      let qm = mat4x4<f32>(ct0[tc * DP4 + d], ct0[(tc + TC) * DP4 + d],
                           ct0[(tc + 2u * TC) * DP4 + d], ct0[(tc + 3u * TC) * DP4 + d]);
      let dm = mat4x4<f32>(ct1[tc * DP4 + d], ct1[(tc + TC) * DP4 + d],
                           ct1[(tc + 2u * TC) * DP4 + d], ct1[(tc + 3u * TC) * DP4 + d]);
      s0 += rt0[kb4 + d] * qm;
      s1 += rt0[kb4 + DP4 + d] * qm;
      s2 += rt0[kb4 + 2u * DP4 + d] * qm;
      s3 += rt0[kb4 + 3u * DP4 + d] * qm;
      g0 += rt1[kb4 + d] * dm;
      g1 += rt1[kb4 + DP4 + d] * dm;
      g2 += rt1[kb4 + 2u * DP4 + d] * dm;
      g3 += rt1[kb4 + 3u * DP4 + d] * dm;
    }
    let cc = cols(tc);
    let mv = vec4(mcol[cc.x], mcol[cc.y], mcol[cc.z], mcol[cc.w]);
    let iv = vec4(icol[cc.x], icol[cc.y], icol[cc.z], icol[cc.w]);
    let dlv = vec4(dcol[cc.x], dcol[cc.y], dcol[cc.z], dcol[cc.w]);
    var p0 = exp(s0 - mv) * iv;
    var p1 = exp(s1 - mv) * iv;
    var p2 = exp(s2 - mv) * iv;
    var p3 = exp(s3 - mv) * iv;
    if (r0 + COLS > R || j0 + ROWS > tk || j0 + ROWS > r0 / G + off + 1u) {
      let rho = vec4(r0) + cc;
      let lim = select(vec4(0u), rho / G + off + 1u, rho < vec4(R)); // keys visible: j < lim
      let inside = jr < vec4(tk);
      p0 = select(vec4(0.0), p0, vec4(inside.x) & (vec4(jr.x) < lim));
      p1 = select(vec4(0.0), p1, vec4(inside.y) & (vec4(jr.y) < lim));
      p2 = select(vec4(0.0), p2, vec4(inside.z) & (vec4(jr.z) < lim));
      p3 = select(vec4(0.0), p3, vec4(inside.w) & (vec4(jr.w) < lim));
    }
    put0(4u * tr, tc, p0);
    put0(4u * tr + 1u, tc, p1);
    put0(4u * tr + 2u, tc, p2);
    put0(4u * tr + 3u, tc, p3);
    put1(4u * tr, tc, p0 * (g0 - dlv));
    put1(4u * tr + 1u, tc, p1 * (g1 - dlv));
    put1(4u * tr + 2u, tc, p2 * (g2 - dlv));
    put1(4u * tr + 3u, tc, p3 * (g3 - dlv));
    workgroupBarrier();
    let pb = 4u * tr * PR;
    for (var c4 = 0u; c4 < TC; c4++) {
      let pm = transpose(mat4x4<f32>(pt0[pb + c4], pt0[pb + PR + c4], pt0[pb + 2u * PR + c4],
                                     pt0[pb + 3u * PR + c4]));
      let gm = transpose(mat4x4<f32>(pt1[pb + c4], pt1[pb + PR + c4], pt1[pb + 2u * PR + c4],
                                     pt1[pb + 3u * PR + c4]));
      accum_dkv(pm[0], gm[0], 4u * c4, tc);
      accum_dkv(pm[1], gm[1], 4u * c4 + 1u, tc);
      accum_dkv(pm[2], gm[2], 4u * c4 + 2u, tc);
      accum_dkv(pm[3], gm[3], 4u * c4 + 3u, tc);
    }
  }
  if (jr.x < tk) { store_dkv(0u, krow(b, kvh, jr.x) * D4, tc); }
  if (jr.y < tk) { store_dkv(1u, krow(b, kvh, jr.y) * D4, tc); }
  if (jr.z < tk) { store_dkv(2u, krow(b, kvh, jr.z) * D4, tc); }
  if (jr.w < tk) { store_dkv(3u, krow(b, kvh, jr.w) * D4, tc); }
}
