// Fused row pass over logits [rows, V]: log-sum-exp, top-K (values and ids, ties to the lower
// id), the sampled token's log-prob and non-finite flags, reading each row once.
//
// One workgroup per row (or per row segment, below), streamed in chunks of 4 · GROUPS elements
// per thread (GROUPS vec4 loads, all issued before any of them is used, so that 8 KiB per
// 128-thread workgroup are in flight at GROUPS = 4, 16 KiB at 8). An element becomes a
// candidate, in a small buffer in workgroup memory, only if it is at least as good as the current
// threshold (key desc, id asc). The first chunk sets the threshold at once: the K-th best of the
// threads' maxima is a lower bound on the row's K-th best, since it is beaten by K elements of
// the row. When the buffer passes half full it is cut back to the best K (rank counting, or a
// bitonic sort past 2 * WG), which raises the threshold; a chunk that would overflow it keeps
// its surplus in registers, compacts, and inserts again, so no input can overflow (a sorted row
// only costs more rounds). The buffer is small (CAP = 128 entries up to K = 32, 256 up to 64, 1,024
// above; src/obrs/gpu/topk.ts streamShape), and a small buffer compacts by cheap rank counting.
// Version history and timings: bench/obrs/versions.ts (v6 to v10; v9 is bench/obrs/v9_topk_stream.wgsl).
//
// Row summary info[row] = (max, sampled log-prob, flags, log Σ exp(x − max)): the log-sum-exp is
// kept as two parts, lse = max + log Σ, and log-probs are computed as (x − max) − log Σ, because
// x − lse loses log Σ entirely when |max| is huge (1e30: max + log Σ rounds to max).
// Row flags (info.z, as a float): 1 = NaN or +Inf in the row, 2 = every entry -Inf,
// 4 = sampled token id out of range.
//
// Segments (SEGS > 1, the split-row design): workgroup w takes segment w % SEGS, elements
// [seg · seg_len, (seg + 1) · seg_len) ∩ [0, V), of row w / SEGS, and writes, at slot
// row · SEGS + seg of the same bindings, its raw top-K (best first, empty slots id 0xffffffff),
// and info = (segment max, the sampled token's raw logit if it lies in the segment, flags & 1,
// Σ exp(x − segment max)). kernels/topk_split.wgsl merges the SEGS partials of each row.
//
// kernels/topk_keys.wgsl (order keys, EMPTY_ID) is prepended (src/obrs/gpu/kernels.ts).
override WG: u32 = 256u;
override K: u32 = 20u;     // K <= WG
override CAP: u32 = 1024u; // power of two, >= 2 * WG
override GROUPS: u32 = 4u;  // vec4 groups per thread per chunk: 4 or 8
override SEGS: u32 = 1u;    // segments per row (1: the fused pass writes the row's results)
override WITH_LSE: bool = true;
override HAS_TOKENS: bool = true;
// Load the row as vec4 (needs V % 4 == 0; `logits4` is the same tile as `logits`). Either way a
// thread sees the same elements in the same order, so the two give identical results.
override VEC4: bool = false;
// Issue the next chunk's loads before ranking this one (no faster on the H100: more registers).
override PREFETCH: bool = false;
// Read the candidate count with 2 barriers instead of 3 per chunk (candidate_count).
override UNIFORM_COUNT: bool = false;

struct Params {
  vocab: u32,
  rows: u32,        // rows in this tile
  row0: u32,        // global index of the tile's first row
  info_row0: u32,   // row offset of this matrix's region in `info` (SEGS = 1)
  seg_len: u32,     // elements per segment, a multiple of 4 (V when SEGS = 1)
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>; // [N, K] log-probs (raw if !WITH_LSE)
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;  // [N, K]
@group(0) @binding(4) var<storage, read_write> info: array<f32>; // [regions*N, 4]: max, sampled, flags, log Σ
@group(0) @binding(5) var<uniform> params: Params;
@group(0) @binding(6) var<storage, read> logits4: array<vec4<f32>>;


var<workgroup> ckey: array<u32, CAP>;
var<workgroup> cid: array<u32, CAP>;
var<workgroup> count: atomic<u32>;
var<workgroup> flags: atomic<u32>;
var<workgroup> n_seen: u32;
var<workgroup> thr_key: u32;
var<workgroup> thr_id: u32;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

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

// One thread's chunk: GROUPS groups of 4 consecutive elements (groups past GROUPS stay -Inf and
// are skipped by `GROUPS > 4u` tests, which the pipeline's constants fold away). Named fields,
// not an array: an array indexed by a runtime value would go to local memory.
struct Chunk {
  a0: vec4<f32>,
  a1: vec4<f32>,
  a2: vec4<f32>,
  a3: vec4<f32>,
  a4: vec4<f32>,
  a5: vec4<f32>,
  a6: vec4<f32>,
  a7: vec4<f32>,
}

// Element `c` of group `g` of this thread's chunk: its index in the row.
fn elem_index(start: u32, lid: u32, g: u32, c: u32) -> u32 {
  return start + 4u * (g * WG + lid) + c;
}

// Group g of this thread's chunk (4 consecutive elements); entries past `end` read as -Inf.
fn load_group(base: u32, start: u32, lid: u32, g: u32, end: u32) -> vec4<f32> {
  let i = elem_index(start, lid, g, 0u);
  if (VEC4) {
    if (i < end) { return logits4[(base + i) / 4u]; }
    return vec4<f32>(neg_inf());
  }
  var v = vec4<f32>(neg_inf());
  for (var c = 0u; c < 4u; c++) {
    if (i + c < end) { v[c] = logits[base + i + c]; }
  }
  return v;
}

// All the chunk's loads, issued before any is used.
fn load_chunk(base: u32, start: u32, lid: u32, end: u32) -> Chunk {
  let n = vec4<f32>(neg_inf());
  var c = Chunk(n, n, n, n, n, n, n, n);
  c.a0 = load_group(base, start, lid, 0u, end);
  c.a1 = load_group(base, start, lid, 1u, end);
  c.a2 = load_group(base, start, lid, 2u, end);
  c.a3 = load_group(base, start, lid, 3u, end);
  if (GROUPS > 4u) {
    c.a4 = load_group(base, start, lid, 4u, end);
    c.a5 = load_group(base, start, lid, 5u, end);
    c.a6 = load_group(base, start, lid, 6u, end);
    c.a7 = load_group(base, start, lid, 7u, end);
  }
  return c;
}

// Group g (a select chain: no local memory; only on the rare paths).
fn grp(c: Chunk, g: u32) -> vec4<f32> {
  let lo = select(select(c.a0, c.a1, g == 1u), select(c.a2, c.a3, g == 3u), g >= 2u);
  let hi = select(select(c.a4, c.a5, g == 5u), select(c.a6, c.a7, g == 7u), g >= 6u);
  return select(lo, hi, g >= 4u);
}

fn pick(c: Chunk, j: u32) -> f32 {
  return grp(c, j >> 2u)[j & 3u];
}

// 1 where the element is in the segment and is neither NaN nor +Inf (those are flagged, never
// ranked).
fn usable(v: vec4<f32>, i: u32, end: u32) -> vec4<bool> {
  let b = bitcast<vec4<u32>>(v);
  let finite_or_neg_inf = (b & vec4<u32>(0x7fffffffu)) < vec4<u32>(0x7f800000u) |
    b == vec4<u32>(NEG_INF_BITS);
  return finite_or_neg_inf & (vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(end));
}

// Bits (4g + c) of the group's elements that are usable and at least as good as (tk, ti).
fn pass_bits(v: vec4<f32>, ok: vec4<bool>, i: u32, g: u32, tk: u32, ti: u32) -> u32 {
  var bits = 0u;
  for (var c = 0u; c < 4u; c++) {
    if (ok[c] && !better(tk, ti, order_key(v[c]), i + c)) { bits |= 1u << (4u * g + c); }
  }
  return bits;
}

fn group_bits(v: vec4<f32>, start: u32, lid: u32, g: u32, end: u32, tk: u32, ti: u32) -> u32 {
  let i = elem_index(start, lid, g, 0u);
  return pass_bits(v, usable(v, i, end), i, g, tk, ti);
}

// Bits of the chunk's elements that pass the threshold (tk, ti).
fn chunk_bits(c: Chunk, start: u32, lid: u32, end: u32, tk: u32, ti: u32) -> u32 {
  var bits = group_bits(c.a0, start, lid, 0u, end, tk, ti) |
    group_bits(c.a1, start, lid, 1u, end, tk, ti) |
    group_bits(c.a2, start, lid, 2u, end, tk, ti) |
    group_bits(c.a3, start, lid, 3u, end, tk, ti);
  if (GROUPS > 4u) {
    bits |= group_bits(c.a4, start, lid, 4u, end, tk, ti) |
      group_bits(c.a5, start, lid, 5u, end, tk, ti) |
      group_bits(c.a6, start, lid, 6u, end, tk, ti) |
      group_bits(c.a7, start, lid, 7u, end, tk, ti);
  }
  return bits;
}

// Whether any element of the chunk is >= the threshold's value `t4` (necessary to pass).
fn any_hit(c: Chunk, t4: vec4<f32>) -> bool {
  var hit = any(c.a0 >= t4) || any(c.a1 >= t4) || any(c.a2 >= t4) || any(c.a3 >= t4);
  if (GROUPS > 4u) {
    hit = hit || any(c.a4 >= t4) || any(c.a5 >= t4) || any(c.a6 >= t4) || any(c.a7 >= t4);
  }
  return hit;
}

// Finite or -Inf (entries past the segment read as -Inf): false for NaN and +Inf, which are
// flagged and never summed or ranked.
fn fin(a: vec4<f32>) -> vec4<bool> {
  return a < vec4<f32>(bitcast<f32>(0x7f800000u));
}

// Folds the chunk into the thread's (max, Σ exp): the chunk's max first, one rescale, then one
// exp per element. Sets `bad` on NaN/+Inf.
fn lse_chunk(st: ptr<function, Stream>, c: Chunk) {
  let ninf = vec4<f32>(neg_inf());
  let x0 = select(ninf, c.a0, fin(c.a0));
  let x1 = select(ninf, c.a1, fin(c.a1));
  let x2 = select(ninf, c.a2, fin(c.a2));
  let x3 = select(ninf, c.a3, fin(c.a3));
  var ok = all(fin(c.a0)) && all(fin(c.a1)) && all(fin(c.a2)) && all(fin(c.a3));
  var mv = max(max(x0, x1), max(x2, x3));
  var x4 = ninf;
  var x5 = ninf;
  var x6 = ninf;
  var x7 = ninf;
  if (GROUPS > 4u) {
    x4 = select(ninf, c.a4, fin(c.a4));
    x5 = select(ninf, c.a5, fin(c.a5));
    x6 = select(ninf, c.a6, fin(c.a6));
    x7 = select(ninf, c.a7, fin(c.a7));
    ok = ok && all(fin(c.a4)) && all(fin(c.a5)) && all(fin(c.a6)) && all(fin(c.a7));
    mv = max(mv, max(max(x4, x5), max(x6, x7)));
  }
  if (!ok) { (*st).bad = 1u; }
  if (!WITH_LSE) { return; }
  let cm = max(max(mv.x, mv.y), max(mv.z, mv.w));
  if (cm > (*st).m) {
    if (bitcast<u32>((*st).m) != NEG_INF_BITS) { (*st).s *= exp((*st).m - cm); }
    (*st).m = cm;
  }
  if (bitcast<u32>((*st).m) != NEG_INF_BITS) {
    let m = vec4<f32>((*st).m);
    var e = exp(x0 - m) + exp(x1 - m) + exp(x2 - m) + exp(x3 - m);
    if (GROUPS > 4u) { e += exp(x4 - m) + exp(x5 - m) + exp(x6 - m) + exp(x7 - m); }
    (*st).s += (e.x + e.y) + (e.z + e.w);
  }
}

// The first chunk sets the threshold from the K-th best of the threads' best usable elements.
fn first_threshold(c: Chunk, start: u32, lid: u32, end: u32) {
  // A thread without one enters key 0 (below every real key) under an id of its own, so that
  // the ranks stay a permutation and slot K - 1 is real exactly when its key is not 0.
  var bk = 0u;
  var bi = EMPTY_ID - lid;
  for (var j = 0u; j < 4u * GROUPS; j++) {
    let g = j >> 2u;
    let e = j & 3u;
    let i = elem_index(start, lid, g, 0u);
    let v = grp(c, g);
    let kj = order_key(v[e]);
    if (usable(v, i, end)[e] && better(kj, i + e, bk, bi)) {
      bk = kj;
      bi = i + e;
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

// The candidate count once every thread has appended, the same value in every thread: one
// workgroupUniformLoad of the atomic itself (UNIFORM_COUNT: 2 barriers), or a barrier, a copy by
// thread 0 and a workgroupUniformLoad of the copy (3 barriers).
fn candidate_count(lid: u32) -> u32 {
  if (UNIFORM_COUNT) { return workgroupUniformLoad(&count); }
  workgroupBarrier();
  if (lid == 0u) { n_seen = atomicLoad(&count); }
  return workgroupUniformLoad(&n_seen);
}

// Inserts the chunk's candidates (compacting when the buffer passes half full or would overflow).
fn insert_chunk(c: Chunk, start: u32, lid: u32, end: u32) {
  var tk = thr_key;
  var ti = thr_id;
  // Most elements fail the threshold: one float compare per element rules them out (x >= the
  // threshold's value is necessary to pass; key 0 means no threshold yet, so -Inf passes too),
  // and only a thread with a hit works out keys, ids and ties.
  let t4 = vec4<f32>(select(key_value(tk), neg_inf(), tk == 0u));
  var pending = 0u;
  if (any_hit(c, t4)) { pending = chunk_bits(c, start, lid, end, tk, ti); }
  loop {
    let np = countOneBits(pending);
    if (np > 0u) {
      var slot = atomicAdd(&count, np);
      var m = pending;
      while (m != 0u) {
        let j = firstTrailingBit(m);
        m &= m - 1u;
        if (slot < CAP) {
          ckey[slot] = order_key(pick(c, j));
          cid[slot] = elem_index(start, lid, j >> 2u, j & 3u);
          pending &= ~(1u << j);
        }
        slot++;
      }
    }
    let n = candidate_count(lid);
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
      if (!better(tk, ti, order_key(pick(c, j)), elem_index(start, lid, j >> 2u, j & 3u))) {
        pending |= 1u << j;
      }
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  let r = w / SEGS;
  let seg = w % SEGS;
  if (r >= params.rows) { return; }
  let vocab = params.vocab;
  let base = r * vocab;
  let grow = params.row0 + r;
  let begin = min(vocab, seg * params.seg_len);
  let end = min(vocab, begin + params.seg_len);
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
  // All loads of a chunk are issued before any is used; with PREFETCH the next chunk's are
  // issued before this chunk is ranked, so that loads stay in flight across its barriers.
  var next = load_chunk(base, begin, lid, end);
  for (var start = begin; start < end; start += chunk) {
    var c = next;
    if (!PREFETCH && start > begin) { c = load_chunk(base, start, lid, end); }
    if (PREFETCH) { next = load_chunk(base, start + chunk, lid, end); }
    lse_chunk(&st, c);
    if (start == begin) { first_threshold(c, start, lid, end); }
    insert_chunk(c, start, lid, end);
  }
  compact(lid, candidate_count(lid));
  if (st.bad != 0u) { atomicOr(&flags, 1u); }

  var sum = 0.0; // Σ exp(x − max); with max, the log-sum-exp (0 and 0 without WITH_LSE)
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
    sum = red_s[0];
    // A segment may be all -Inf in a row that is not: the merge sets flag 2 from the row's max.
    if (SEGS == 1u && bitcast<u32>(mmax) == NEG_INF_BITS && lid == 0u) { atomicOr(&flags, 2u); }
  }

  if (SEGS > 1u) {
    // This segment's partial for kernels/topk_split.wgsl: raw values, (max, Σ) unlogged.
    let slot = grow * SEGS + seg;
    for (var t = lid; t < K; t += WG) {
      vals[slot * K + t] = key_value(ckey[t]);
      ids[slot * K + t] = cid[t];
    }
    workgroupBarrier();
    if (lid == 0u) {
      var raw = 0.0;
      if (HAS_TOKENS) {
        let tok = tokens[grow];
        if (tok >= begin && tok < end) { raw = logits[base + tok]; }
      }
      info[slot * 4u] = mmax;
      info[slot * 4u + 1u] = raw;
      info[slot * 4u + 2u] = f32(atomicLoad(&flags));
      info[slot * 4u + 3u] = sum;
    }
    return;
  }

  let log_sum = select(0.0, log(sum), WITH_LSE);
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
