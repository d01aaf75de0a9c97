// One decode step of causal grouped-query attention over the KV cache, fused: for query head h of
// row b, scores against positions 0..pos (scale · q·k), softmax, weighted sum of values. The new
// key/value of position `pos` is not yet in the cache: the group's first query head writes it,
// so one dispatch replaces the cache writes, the two cache-slice copies and the four attention
// ops of the composed path (src/nn/kv_cache.ts keeps that path as the reference and the fallback
// beyond MAXT positions).
//
// Two entry points, one workgroup per (row, query head) each:
// - `joined` reads the joined q/k/v projection [B, (hq + 2·hkv)·d] itself and does QK-norm and
//   RoPE on q head h and on its kv head's new key (the work of ops_qkv_heads.wgsl's `fwd`, whose
//   dispatch a decode step then no longer pays): the q row and k row are RMS-normalised with the
//   same lanes and summation tree as that kernel and rotated with the same expressions, so the
//   two agree (bit for bit where the compiler contracts both alike). With HAS_BIAS it adds the
//   projection's bias [(hq + 2·hkv)·d] to the q, k and v rows as it reads them, before the norm and
//   the rotation (Qwen2's q/k/v biases; ops_qkv_heads.wgsl does the same).
// - `main` takes q, k_new, v_new already split, normalised and rotated.
// Scores live in workgroup memory (pos < MAXT); head size d ≤ MAXD.
override WG: u32 = 64u;
override MAXT: u32 = 2048u;
override MAXD: u32 = 256u;

const NORM_Q: u32 = 1u; // flags of `joined`: the section has a norm weight (ops_qkv_heads.wgsl's)
const NORM_K: u32 = 2u;
const HAS_BIAS: u32 = 4u; // `joined`: the bias binding holds the q/k/v bias (else a stand-in)

// scale = 1/sqrt(d). `joined` only: base θ and eps of RoPE and RMSNorm, flags above, lanes = the
// power of two ops_qkv_heads.wgsl sums a head row's squares over (≥ d/2, ≤ MAXD).
struct Params {
  B: u32,
  hq: u32,
  hkv: u32,
  d: u32,
  tmax: u32,
  pos: u32,
  scale: f32,
  base: f32,
  eps: f32,
  flags: u32,
  lanes: u32,
  _pad: u32,
}

// main: q [B, hq, d], k_new and v_new [B, hkv, d]
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_new: array<f32>;
@group(0) @binding(2) var<storage, read> v_new: array<f32>;
// joined: qkv [B, (hq + 2·hkv)·d], the q-norm and k-norm weights [d] (stand-ins without)
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> wq: array<f32>;
@group(0) @binding(2) var<storage, read> wk: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<f32>; // [B, hkv, tmax, d]
@group(0) @binding(4) var<storage, read_write> v_cache: array<f32>; // [B, hkv, tmax, d]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;     // [B, hq, d]
@group(0) @binding(6) var<uniform> p: Params;
@group(0) @binding(7) var<storage, read> bias: array<f32>; // joined: [(hq + 2·hkv)·d]

var<workgroup> qs: array<f32, MAXD>; // the query head
var<workgroup> ks: array<f32, MAXD>; // the new key and value of its kv head
var<workgroup> vs: array<f32, MAXD>;
var<workgroup> sc: array<f32, MAXT>;
var<workgroup> red: array<f32, WG>;
var<workgroup> ss: array<vec2f, MAXD>; // joined: sums of squares of the q row (x) and k row (y)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.B * p.hq) { return; }
  let b = w / p.hq;
  let h = w % p.hq;
  let kvh = h / (p.hq / p.hkv);
  let D = p.d;
  for (var i = lid; i < D; i += WG) {
    qs[i] = q[(b * p.hq + h) * D + i];
    ks[i] = k_new[(b * p.hkv + kvh) * D + i];
    vs[i] = v_new[(b * p.hkv + kvh) * D + i];
  }
  workgroupBarrier();
  attend(b, h, lid);
}

@compute @workgroup_size(WG)
fn joined(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= p.B * p.hq) { return; }
  let b = w / p.hq;
  let h = w % p.hq;
  let kvh = h / (p.hq / p.hkv);
  let D = p.d;
  let half = D / 2u;
  let row = b * (p.hq + 2u * p.hkv) * D;
  let qo = row + h * D;
  let ko = row + (p.hq + kvh) * D;
  let vo = row + (p.hq + p.hkv + kvh) * D;
  // the rows' biases: zero without HAS_BIAS (x + 0 is x)
  let has_bias = (p.flags & HAS_BIAS) != 0u;
  let qb = h * D;
  let kb = (p.hq + kvh) * D;
  let vb = (p.hq + p.hkv + kvh) * D;
  // Lane j of ops_qkv_heads.wgsl's row holds pair (j, j + D/2): its squares, then a halving tree
  // over the lanes, in that kernel's order (one pair a lane: its P is 1 for d ≤ 512).
  for (var j = lid; j < p.lanes; j += WG) {
    var e = vec2f(0.0);
    if (j < half) {
      var a = qkv[qo + j];
      var c = qkv[qo + j + half];
      var ka = qkv[ko + j];
      var kc = qkv[ko + j + half];
      if (has_bias) {
        a += bias[qb + j];
        c += bias[qb + j + half];
        ka += bias[kb + j];
        kc += bias[kb + j + half];
      }
      e = vec2f(a * a + c * c, ka * ka + kc * kc);
    }
    ss[j] = e;
  }
  workgroupBarrier();
  for (var o = p.lanes / 2u; o > 0u; o /= 2u) {
    for (var j = lid; j < o; j += WG) { ss[j] += ss[j + o]; }
    workgroupBarrier();
  }
  let rq = inverseSqrt(ss[0].x / f32(D) + p.eps);
  let rk = inverseSqrt(ss[0].y / f32(D) + p.eps);
  // x·r·w, then rotate-half by (pos)·base^(−2j/d): ops_qkv_heads.wgsl's expressions
  for (var j = lid; j < half; j += WG) {
    let inv_freq = pow(p.base, -2.0 * f32(j) / f32(D));
    let angle = f32(p.pos) * inv_freq;
    let cs = vec2f(cos(angle), sin(angle));
    var a = qkv[qo + j];
    var c = qkv[qo + j + half];
    var ka = qkv[ko + j];
    var kc = qkv[ko + j + half];
    var va = qkv[vo + j];
    var vc = qkv[vo + j + half];
    if (has_bias) {
      a += bias[qb + j];
      c += bias[qb + j + half];
      ka += bias[kb + j];
      kc += bias[kb + j + half];
      va += bias[vb + j];
      vc += bias[vb + j + half];
    }
    if ((p.flags & NORM_Q) != 0u) { a = a * rq * wq[j]; c = c * rq * wq[j + half]; }
    qs[j] = a * cs.x - c * cs.y;
    qs[j + half] = c * cs.x + a * cs.y;
    if ((p.flags & NORM_K) != 0u) { ka = ka * rk * wk[j]; kc = kc * rk * wk[j + half]; }
    ks[j] = ka * cs.x - kc * cs.y;
    ks[j + half] = kc * cs.x + ka * cs.y;
    vs[j] = va;
    vs[j + half] = vc;
  }
  workgroupBarrier();
  attend(b, h, lid);
}

// Attention of query qs (row b, head h) over cache positions 0..pos-1 and the new key ks / value
// vs at pos; the group's first query head then stores ks, vs at pos (the others only read < pos).
fn attend(b: u32, h: u32, lid: u32) {
  let g = p.hq / p.hkv;
  let D = p.d;
  let pos = p.pos;
  let cache_base = (b * p.hkv + h / g) * p.tmax * D;
  var m = -3.4028235e38;
  for (var t = lid; t <= pos; t += WG) {
    var s = 0.0;
    if (t == pos) {
      for (var i = 0u; i < D; i++) { s += qs[i] * ks[i]; }
    } else {
      for (var i = 0u; i < D; i++) { s += qs[i] * k_cache[cache_base + t * D + i]; }
    }
    s *= p.scale;
    sc[t] = s;
    m = max(m, s);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var z = 0.0;
  for (var t = lid; t <= pos; t += WG) {
    let e = exp(sc[t] - mx);
    sc[t] = e;
    z += e;
  }
  red[lid] = z;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  for (var i = lid; i < D; i += WG) {
    var acc = 0.0;
    for (var t = 0u; t < pos; t++) { acc += sc[t] * v_cache[cache_base + t * D + i]; }
    acc += sc[pos] * vs[i];
    out[(b * p.hq + h) * D + i] = acc * inv;
  }
  if (h % g == 0u) {
    for (var i = lid; i < D; i += WG) {
      k_cache[cache_base + pos * D + i] = ks[i];
      v_cache[cache_base + pos * D + i] = vs[i];
    }
  }
}
