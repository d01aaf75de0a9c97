// Fused row pass over logits [rows, V]: log-sum-exp (online softmax), top-K (values and ids, ties
// to the lower id), the sampled token's log-prob and non-finite flags, reading each row once.
//
// One workgroup per row. The row is streamed in chunks of WG*PER elements; an element enters a
// candidate buffer in workgroup memory only if it beats the current K-th best (key desc, id asc),
// so after the first chunks almost nothing is appended. When the buffer could overflow on the
// next chunk it is sorted (bitonic, in workgroup memory: naga compiles dynamically indexed private
// arrays badly) and cut back to K, which raises the threshold. Host guarantees K <= CAP - WG*PER.
// Compaction of <= 512 candidates ranks them by counting (3 barriers) instead of sorting.
// Version history and timings: bench/obrs/versions.ts.
//
// Row summary info[row] = (max, sampled log-prob, flags, log Σ exp(x − max)): the log-sum-exp is
// kept as two parts, lse = max + log Σ, and log-probs are computed as (x − max) − log Σ, because
// x − lse loses log Σ entirely when |max| is huge (1e30: max + log Σ rounds to max).
// Row flags (info.z, as a float): 1 = NaN or +Inf in the row, 2 = every entry -Inf,
// 4 = sampled token id out of range.
override WG: u32 = 256u;
override PER: u32 = 2u;
override K: u32 = 20u;
override CAP: u32 = 2048u; // power of two
override WITH_LSE: bool = true;
override HAS_TOKENS: bool = true;
// Read the row as vec4 after the first chunk (needs V % 4 == 0; `logits4` is the same tile as
// `logits`). Four elements per load: a quarter of the load and index instructions.
override VEC4: bool = false;

struct Params {
  vocab: u32,
  rows: u32,        // rows in this tile
  row0: u32,        // global index of the tile's first row
  info_row0: u32,   // row offset of this matrix's region in `info`
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>; // [N, K] log-probs (raw if !WITH_LSE)
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;  // [N, K]
@group(0) @binding(4) var<storage, read_write> info: array<f32>; // [regions*N, 4]: max, sampled, flags, log Σ
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<storage, read> logits4: array<vec4<f32>>;

const EMPTY_ID: u32 = 0xffffffffu;
const NEG_INF_BITS: u32 = 0xff800000u;

var<workgroup> ckey: array<u32, CAP>;
var<workgroup> cid: array<u32, CAP>;
var<workgroup> count: atomic<u32>;
var<workgroup> flags: atomic<u32>;
var<workgroup> n_seen: u32;
var<workgroup> thr_key: u32;
var<workgroup> thr_id: u32;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// Monotone map f32 -> u32 (larger float, larger key); -0 and +0 share a key so they tie by id.
fn order_key(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn better(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
  return ka > kb || (ka == kb && ia < ib);
}

// Sorts the first `size` candidates best-first (size: a uniform power of two <= CAP).
fn sort_candidates(lid: u32, size: u32) {
  for (var block = 2u; block <= size; block <<= 1u) {
    for (var stride = block >> 1u; stride > 0u; stride >>= 1u) {
      for (var t = lid; t < size; t += WG) {
        let p = t ^ stride;
        if (p > t) {
          let ka = ckey[t];
          let ia = cid[t];
          let kb = ckey[p];
          let ib = cid[p];
          if (better(kb, ib, ka, ia) == ((t & block) == 0u)) {
            ckey[t] = kb; cid[t] = ib;
            ckey[p] = ka; cid[p] = ia;
          }
        }
      }
      workgroupBarrier();
    }
  }
}

fn next_pow2(n: u32) -> u32 {
  var p = 2u;
  while (p < n) { p <<= 1u; }
  return p;
}

// Up to this many candidates, compaction ranks each candidate by counting the candidates better
// than it (n²/WG compares per thread, 2 barriers) instead of a bitonic sort (~45 barriers).
const RANK_MAX: u32 = 512u;
const RANK_SLOTS: u32 = 2u; // RANK_MAX / WG for WG = 256; checked in rank_compact

// Keeps the best K of the n candidates, sorted, by rank counting (n <= RANK_MAX).
fn rank_compact(lid: u32, n: u32) {
  var keep_key: array<u32, RANK_SLOTS>;
  var keep_id: array<u32, RANK_SLOTS>;
  var keep_rank: array<u32, RANK_SLOTS>;
  for (var s = 0u; s < RANK_SLOTS; s++) {
    let t = lid + s * WG;
    keep_rank[s] = EMPTY_ID;
    if (t < n) {
      let kt = ckey[t];
      let it = cid[t];
      var rank = 0u;
      for (var j = 0u; j < n; j++) {
        if (better(ckey[j], cid[j], kt, it)) { rank++; }
      }
      keep_key[s] = kt;
      keep_id[s] = it;
      keep_rank[s] = rank;
    }
  }
  workgroupBarrier();
  for (var s = 0u; s < RANK_SLOTS; s++) {
    let t = lid + s * WG;
    if (t >= K && t < n) {
      ckey[t] = 0u;
      cid[t] = EMPTY_ID;
    }
  }
  workgroupBarrier();
  for (var s = 0u; s < RANK_SLOTS; s++) {
    if (keep_rank[s] < K) {
      ckey[keep_rank[s]] = keep_key[s];
      cid[keep_rank[s]] = keep_id[s];
    }
  }
  workgroupBarrier();
}

// Sorts the n candidates and keeps the best K; raises the threshold once K are known.
fn compact(lid: u32, n: u32) {
  if (n <= RANK_MAX && WG * RANK_SLOTS >= RANK_MAX) {
    rank_compact(lid, n);
  } else {
    let size = next_pow2(n);
    sort_candidates(lid, size);
    for (var t = K + lid; t < size; t += WG) {
      ckey[t] = 0u;
      cid[t] = EMPTY_ID;
    }
  }
  if (lid == 0u) {
    atomicStore(&count, min(n, K));
    if (n >= K) {
      thr_key = ckey[K - 1u];
      thr_id = cid[K - 1u];
    }
  }
  workgroupBarrier();
}

// Per-thread state of the pass: online (max, Σexp) and whether a NaN/+Inf was seen.
struct Stream {
  m: f32,
  s: f32,
  bad: u32,
}

// One element: online softmax update, then a candidate if it beats the threshold (tk, ti).
fn consider(x: f32, i: u32, tk: u32, ti: u32, st: ptr<function, Stream>) {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u || bits == 0x7f800000u) {
    (*st).bad = 1u; // NaN or +Inf: reported, never ranked or summed
    return;
  }
  if (WITH_LSE && bits != NEG_INF_BITS) {
    if (x > (*st).m) {
      (*st).s = (*st).s * exp((*st).m - x) + 1.0;
      (*st).m = x;
    } else {
      (*st).s += exp(x - (*st).m);
    }
  }
  let key = order_key(x);
  if (better(key, i, tk, ti)) {
    let slot = atomicAdd(&count, 1u);
    ckey[slot] = key;
    cid[slot] = i;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let vocab = params.vocab;
  let base = r * vocab;
  let grow = params.row0 + r;
  for (var t = lid; t < CAP; t += WG) {
    ckey[t] = 0u;
    cid[t] = EMPTY_ID;
  }
  if (lid == 0u) {
    atomicStore(&count, 0u);
    atomicStore(&flags, 0u);
    thr_key = 0u;
    thr_id = EMPTY_ID;
  }
  workgroupBarrier();

  var st = Stream(bitcast<f32>(NEG_INF_BITS), 0.0, 0u);
  // The first chunk is one element per thread: everything in it is a candidate (no threshold yet),
  // so it is compacted at once, and small, which sets a threshold for a cheap 256-entry sort;
  // later chunks load PER elements (PER vec4 with VEC4) per thread between barriers so that many
  // loads are in flight.
  let next_chunk = select(WG * PER, 4u * WG * PER, VEC4);
  var start = 0u;
  loop {
    if (start >= vocab) { break; }
    let tk = thr_key;
    let ti = thr_id;
    let first = start == 0u;
    if (first) {
      let i = lid;
      if (i < vocab) { consider(logits[base + i], i, tk, ti, &st); }
      start = WG;
    } else if (VEC4) {
      let q0 = (base + start) / 4u; // base and start are multiples of 4
      for (var e = 0u; e < PER; e++) {
        let i = start + 4u * (e * WG + lid);
        if (i < vocab) {
          let v = logits4[q0 + e * WG + lid];
          consider(v.x, i, tk, ti, &st);
          consider(v.y, i + 1u, tk, ti, &st);
          consider(v.z, i + 2u, tk, ti, &st);
          consider(v.w, i + 3u, tk, ti, &st);
        }
      }
      start += next_chunk;
    } else {
      for (var e = 0u; e < PER; e++) {
        let i = start + e * WG + lid;
        if (i < vocab) { consider(logits[base + i], i, tk, ti, &st); }
      }
      start += next_chunk;
    }
    workgroupBarrier();
    if (lid == 0u) { n_seen = atomicLoad(&count); }
    let n = workgroupUniformLoad(&n_seen);
    if (first || n > CAP - next_chunk) { compact(lid, n); }
  }
  if (lid == 0u) { n_seen = atomicLoad(&count); }
  let n = workgroupUniformLoad(&n_seen);
  compact(lid, n);
  if (st.bad != 0u) { atomicOr(&flags, 1u); }

  var log_sum = 0.0; // log Σ exp(x − max); with max, the log-sum-exp (0 and 0 without WITH_LSE)
  var mmax = 0.0;
  if (WITH_LSE) {
    red_m[lid] = st.m;
    red_s[lid] = st.s;
    workgroupBarrier();
    for (var half = WG >> 1u; half > 0u; half >>= 1u) {
      if (lid < half) {
        let m1 = red_m[lid];
        let m2 = red_m[lid + half];
        let mm = max(m1, m2);
        // A -Inf half contributes 0 (and exp(-inf - -inf) would be NaN), so skip it by its bits.
        var s1 = 0.0;
        var s2 = 0.0;
        if (bitcast<u32>(m1) != NEG_INF_BITS) { s1 = red_s[lid] * exp(m1 - mm); }
        if (bitcast<u32>(m2) != NEG_INF_BITS) { s2 = red_s[lid + half] * exp(m2 - mm); }
        red_s[lid] = s1 + s2;
        red_m[lid] = mm;
      }
      workgroupBarrier();
    }
    mmax = red_m[0];
    log_sum = log(red_s[0]);
    if (bitcast<u32>(mmax) == NEG_INF_BITS && lid == 0u) { atomicOr(&flags, 2u); }
  }

  for (var t = lid; t < K; t += WG) {
    let id = cid[t];
    vals[grow * K + t] = (key_value(ckey[t]) - mmax) - log_sum;
    ids[grow * K + t] = id;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var sampled = 0.0;
    if (HAS_TOKENS) {
      let tok = tokens[grow];
      if (tok < vocab) {
        sampled = (logits[base + tok] - mmax) - log_sum;
      } else {
        atomicOr(&flags, 4u);
      }
    }
    let o = (params.info_row0 + grow) * 4u;
    info[o] = mmax;
    info[o + 1u] = sampled;
    info[o + 2u] = f32(atomicLoad(&flags));
    info[o + 3u] = log_sum;
  }
}
