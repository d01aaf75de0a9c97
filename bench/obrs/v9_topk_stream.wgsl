// Fused row pass over logits [rows, V]: log-sum-exp, top-K (values and ids, ties to the lower
// id), the sampled token's log-prob and non-finite flags, reading each row once.
//
// One workgroup per row, streamed in chunks of 16 elements per thread (4 vec4 loads, all issued
// before any of them is used, so that 16 KiB per workgroup are in flight). An element becomes a
// candidate, in a small buffer in workgroup memory, only if it is at least as good as the current
// threshold (key desc, id asc). The first chunk sets the threshold at once: the K-th best of the
// threads' maxima is a lower bound on the row's K-th best, since it is beaten by K elements of
// the row. When the buffer passes half full it is cut back to the best K (rank counting, or a
// bitonic sort past 2 * WG), which raises the threshold; a chunk that would overflow it keeps
// its surplus in registers, compacts, and inserts again, so no input can overflow (a sorted row
// only costs more rounds). The buffer is small (CAP = 128 entries up to K = 32, 256 up to 64, 1,024
// above; src/obrs/gpu/ops.ts streamShape), and a small buffer compacts by cheap rank counting.
// Version history and timings: bench/obrs/versions.ts (v6 to v9).
//
// Row summary info[row] = (max, sampled log-prob, flags, log Σ exp(x − max)): the log-sum-exp is
// kept as two parts, lse = max + log Σ, and log-probs are computed as (x − max) − log Σ, because
// x − lse loses log Σ entirely when |max| is huge (1e30: max + log Σ rounds to max).
// Row flags (info.z, as a float): 1 = NaN or +Inf in the row, 2 = every entry -Inf,
// 4 = sampled token id out of range.
override WG: u32 = 256u;
override K: u32 = 20u;     // K <= WG
override CAP: u32 = 1024u; // power of two, >= 2 * WG
override WITH_LSE: bool = true;
override HAS_TOKENS: bool = true;
// Load the row as vec4 (needs V % 4 == 0; `logits4` is the same tile as `logits`). Either way a
// thread sees the same elements in the same order, so the two give identical results.
override VEC4: bool = false;
// Issue the next chunk's loads before ranking this one (no faster on the H100: more registers).
override PREFETCH: bool = false;

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
// Elements per thread per chunk: 4 groups of 4.
const GROUPS: u32 = 4u;

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
const RANK_SLOTS: u32 = 2u; // candidates per thread: up to 2 * WG are ranked, more are sorted

// Keeps the best K of the n candidates, sorted, by rank counting (n <= WG * RANK_SLOTS).
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
  if (n <= WG * RANK_SLOTS) {
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

fn neg_inf() -> f32 {
  return bitcast<f32>(NEG_INF_BITS);
}

// Element `c` of group `g` of this thread's chunk: its index in the row.
fn elem_index(start: u32, lid: u32, g: u32, c: u32) -> u32 {
  return start + 4u * (g * WG + lid) + c;
}

// Group g of this thread's chunk (4 consecutive elements); entries past the row read as -Inf.
fn load_group(base: u32, start: u32, lid: u32, g: u32, vocab: u32) -> vec4<f32> {
  let i = elem_index(start, lid, g, 0u);
  if (VEC4) {
    if (i < vocab) { return logits4[(base + i) / 4u]; }
    return vec4<f32>(neg_inf());
  }
  var v = vec4<f32>(neg_inf());
  for (var c = 0u; c < 4u; c++) {
    if (i + c < vocab) { v[c] = logits[base + i + c]; }
  }
  return v;
}

// 1 where the element is in the row and is neither NaN nor +Inf (those are flagged, never ranked).
fn usable(v: vec4<f32>, i: u32, vocab: u32) -> vec4<bool> {
  let b = bitcast<vec4<u32>>(v);
  let finite_or_neg_inf = (b & vec4<u32>(0x7fffffffu)) < vec4<u32>(0x7f800000u) |
    b == vec4<u32>(NEG_INF_BITS);
  return finite_or_neg_inf & (vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(vocab));
}

fn pick(a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, j: u32) -> f32 {
  let g = j >> 2u;
  let v = select(select(a0, a1, g == 1u), select(a2, a3, g == 3u), g >= 2u);
  return v[j & 3u];
}

// Bits (4g + c) of the group's elements that are usable and at least as good as (tk, ti).
fn pass_bits(v: vec4<f32>, ok: vec4<bool>, i: u32, g: u32, tk: u32, ti: u32) -> u32 {
  var bits = 0u;
  for (var c = 0u; c < 4u; c++) {
    if (ok[c] && !better(tk, ti, order_key(v[c]), i + c)) { bits |= 1u << (4u * g + c); }
  }
  return bits;
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

  var st = Stream(neg_inf(), 0.0, 0u);
  let chunk = 4u * GROUPS * WG;
  // All four loads of a chunk are issued before any is used; with PREFETCH the next chunk's are
  // issued before this chunk is ranked, so that loads stay in flight across its barriers.
  var n0 = load_group(base, 0u, lid, 0u, vocab);
  var n1 = load_group(base, 0u, lid, 1u, vocab);
  var n2 = load_group(base, 0u, lid, 2u, vocab);
  var n3 = load_group(base, 0u, lid, 3u, vocab);
  for (var start = 0u; start < vocab; start += chunk) {
    var a0 = n0;
    var a1 = n1;
    var a2 = n2;
    var a3 = n3;
    if (!PREFETCH && start > 0u) {
      a0 = load_group(base, start, lid, 0u, vocab);
      a1 = load_group(base, start, lid, 1u, vocab);
      a2 = load_group(base, start, lid, 2u, vocab);
      a3 = load_group(base, start, lid, 3u, vocab);
    }
    if (PREFETCH) {
      n0 = load_group(base, start + chunk, lid, 0u, vocab);
      n1 = load_group(base, start + chunk, lid, 1u, vocab);
      n2 = load_group(base, start + chunk, lid, 2u, vocab);
      n3 = load_group(base, start + chunk, lid, 3u, vocab);
    }
    let i0 = elem_index(start, lid, 0u, 0u);
    let i1 = elem_index(start, lid, 1u, 0u);
    let i2 = elem_index(start, lid, 2u, 0u);
    let i3 = elem_index(start, lid, 3u, 0u);
    // Finite or -Inf (entries past the row read as -Inf); false for NaN and +Inf, which are
    // flagged and never summed or ranked.
    let inf4 = vec4<f32>(bitcast<f32>(0x7f800000u));
    let f0 = a0 < inf4;
    let f1 = a1 < inf4;
    let f2 = a2 < inf4;
    let f3 = a3 < inf4;
    if (!(all(f0) && all(f1) && all(f2) && all(f3))) { st.bad = 1u; }
    if (WITH_LSE) {
      // One rescale per chunk: the chunk's max first, then 16 exps against it.
      let ninf = vec4<f32>(neg_inf());
      let x0 = select(ninf, a0, f0);
      let x1 = select(ninf, a1, f1);
      let x2 = select(ninf, a2, f2);
      let x3 = select(ninf, a3, f3);
      let mv = max(max(x0, x1), max(x2, x3));
      let cm = max(max(mv.x, mv.y), max(mv.z, mv.w));
      if (cm > st.m) {
        if (bitcast<u32>(st.m) != NEG_INF_BITS) { st.s *= exp(st.m - cm); }
        st.m = cm;
      }
      if (bitcast<u32>(st.m) != NEG_INF_BITS) {
        let m = vec4<f32>(st.m);
        let e = exp(x0 - m) + exp(x1 - m) + exp(x2 - m) + exp(x3 - m);
        st.s += (e.x + e.y) + (e.z + e.w);
      }
    }

    if (start == 0u) {
      // Threshold from the threads' maxima: each thread's best usable element of the chunk.
      let ok0 = usable(a0, i0, vocab);
      let ok1 = usable(a1, i1, vocab);
      let ok2 = usable(a2, i2, vocab);
      let ok3 = usable(a3, i3, vocab);
      // A thread without one enters key 0 (below every real key) under an id of its own, so that
      // the ranks stay a permutation and slot K - 1 is real exactly when its key is not 0.
      var bk = 0u;
      var bi = EMPTY_ID - lid;
      for (var j = 0u; j < 4u * GROUPS; j++) {
        let g = j >> 2u;
        let c = j & 3u;
        let okg = select(select(ok0, ok1, g == 1u), select(ok2, ok3, g == 3u), g >= 2u);
        let kj = order_key(pick(a0, a1, a2, a3, j));
        let ij = elem_index(start, lid, g, c);
        if (okg[c] && better(kj, ij, bk, bi)) {
          bk = kj;
          bi = ij;
        }
      }
      ckey[lid] = bk;
      cid[lid] = bi;
      workgroupBarrier();
      rank_compact(lid, WG);
      if (lid == 0u) {
        // Fewer than K usable maxima: no threshold yet (everything is a candidate).
        if (ckey[K - 1u] != 0u) {
          thr_key = ckey[K - 1u];
          thr_id = cid[K - 1u];
        }
        atomicStore(&count, 0u);
      }
      workgroupBarrier();
      for (var t = lid; t < K; t += WG) {
        ckey[t] = 0u;
        cid[t] = EMPTY_ID;
      }
      workgroupBarrier();
    }

    var tk = thr_key;
    var ti = thr_id;
    // Most elements fail the threshold: one float compare per element rules them out (x >= the
    // threshold's value is necessary to pass; key 0 means no threshold yet, so -Inf passes too),
    // and only a thread with a hit works out keys, ids and ties.
    let t4 = vec4<f32>(select(key_value(tk), neg_inf(), tk == 0u));
    var pending = 0u;
    if (any(a0 >= t4) || any(a1 >= t4) || any(a2 >= t4) || any(a3 >= t4)) {
      pending = pass_bits(a0, usable(a0, i0, vocab), i0, 0u, tk, ti) |
        pass_bits(a1, usable(a1, i1, vocab), i1, 1u, tk, ti) |
        pass_bits(a2, usable(a2, i2, vocab), i2, 2u, tk, ti) |
        pass_bits(a3, usable(a3, i3, vocab), i3, 3u, tk, ti);
    }
    loop {
      let np = countOneBits(pending);
      if (np > 0u) {
        var slot = atomicAdd(&count, np);
        var m = pending;
        while (m != 0u) {
          let j = firstTrailingBit(m);
          m &= m - 1u;
          if (slot < CAP) {
            ckey[slot] = order_key(pick(a0, a1, a2, a3, j));
            cid[slot] = elem_index(start, lid, j >> 2u, j & 3u);
            pending &= ~(1u << j);
          }
          slot++;
        }
      }
      workgroupBarrier();
      if (lid == 0u) { n_seen = atomicLoad(&count); }
      let n = workgroupUniformLoad(&n_seen);
      if (n <= CAP) {
        // Past half full: cut back to K now, which raises the threshold for the next chunks.
        if (n > CAP / 2u) { compact(lid, n); }
        break;
      }
      // Overflow: the CAP written slots are cut to the best K; the surplus, still in
      // registers, is tested against the raised threshold and inserted again.
      compact(lid, CAP);
      tk = thr_key;
      ti = thr_id;
      var m = pending;
      pending = 0u;
      while (m != 0u) {
        let j = firstTrailingBit(m);
        m &= m - 1u;
        if (!better(tk, ti, order_key(pick(a0, a1, a2, a3, j)), elem_index(start, lid, j >> 2u, j & 3u))) {
          pending |= 1u << j;
        }
      }
    }
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
