// Merge of the split-row pass: topk_stream.wgsl with SEGS > 1 streams each row as SEGS segments,
// one workgroup each (more, shorter workgroups: shorter tails, more rows in progress), and writes
// per segment its raw top-K, best first (empty slots: id EMPTY_ID, at the end), and (max, sampled
// raw logit, flags, Σ exp(x − max)). This kernel, one workgroup per row, writes what the fused
// pass writes: the row's top-K log-probs (raw values without WITH_LSE) and ids, and
// info[row] = (max, sampled log-prob, flags, log Σ exp(x − max)).
//
// The row's top K is among the segments' top K (an element beaten by K others of its segment is
// beaten by K others of the row). A candidate's rank in the row is its rank in its own list plus,
// for every other list, the number of entries better than it: a binary search, since each list is
// sorted and its empty slots (key 0) are worse than any real entry. Ids are distinct across
// segments, so the ranks of the real candidates are exactly 0 .. R − 1 (R real candidates);
// slots R .. K − 1 (rows with NaN/+Inf, which are never ranked) are written empty, as the fused
// pass writes them. The (max, Σ) partials are combined in segment order: deterministic.
//
// kernels/topk_keys.wgsl is prepended (src/obrs/gpu/kernels.ts).
override WG: u32 = 64u;
override K: u32 = 20u;
override SEGS: u32 = 4u;
override NC: u32 = 80u; // SEGS * K
override WITH_LSE: bool = true;
override HAS_TOKENS: bool = true;

struct Params {
  vocab: u32,
  rows: u32,      // rows N (all of them: the partials are indexed by global row)
  seg_len: u32,   // elements per segment
  info_row0: u32, // row offset of this matrix's region in `info`
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> part_vals: array<f32>; // [N · SEGS, K] raw values
@group(0) @binding(2) var<storage, read> part_ids: array<u32>;  // [N · SEGS, K]
@group(0) @binding(3) var<storage, read> part_info: array<f32>; // [N · SEGS, 4]
@group(0) @binding(4) var<storage, read_write> vals: array<f32>; // [N, K]
@group(0) @binding(5) var<storage, read_write> ids: array<u32>;  // [N, K]
@group(0) @binding(6) var<storage, read_write> info: array<f32>; // [regions · N, 4]
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> mkey: array<u32, NC>;
var<workgroup> mid: array<u32, NC>;

// Entries of list s (sorted best first) better than (kt, it).
fn better_in_list(s: u32, kt: u32, it: u32) -> u32 {
  var lo = 0u;
  var hi = K;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    if (better(mkey[s * K + m], mid[s * K + m], kt, it)) { lo = m + 1u; } else { hi = m; }
  }
  return lo;
}

// Real (non-empty) entries of list s: empties are a suffix.
fn real_in_list(s: u32) -> u32 {
  var lo = 0u;
  var hi = K;
  while (lo < hi) {
    let m = (lo + hi) / 2u;
    if (mid[s * K + m] != EMPTY_ID) { lo = m + 1u; } else { hi = m; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn merge(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  for (var t = lid; t < NC; t += WG) {
    mkey[t] = order_key(part_vals[r * NC + t]);
    mid[t] = part_ids[r * NC + t];
  }
  workgroupBarrier();

  // Every thread combines the SEGS partials itself, in segment order (same result in each).
  var m = bitcast<f32>(NEG_INF_BITS);
  var flags = 0u;
  for (var s = 0u; s < SEGS; s++) {
    let p = (r * SEGS + s) * 4u;
    m = max(m, part_info[p]);
    flags |= u32(part_info[p + 2u]);
  }
  var mmax = 0.0;
  var log_sum = 0.0;
  if (WITH_LSE) {
    var sum = 0.0;
    for (var s = 0u; s < SEGS; s++) {
      let p = (r * SEGS + s) * 4u;
      let ms = part_info[p];
      if (bitcast<u32>(ms) != NEG_INF_BITS) { sum += part_info[p + 3u] * exp(ms - m); }
    }
    mmax = m;
    log_sum = log(sum);
    if (bitcast<u32>(m) == NEG_INF_BITS) { flags |= 2u; }
  }

  for (var t = lid; t < NC; t += WG) {
    let it = mid[t];
    if (it == EMPTY_ID) { continue; }
    let kt = mkey[t];
    let own = t / K;
    var rank = t - own * K;
    for (var s = 0u; s < SEGS; s++) {
      if (s != own) { rank += better_in_list(s, kt, it); }
    }
    if (rank < K) {
      vals[r * K + rank] = (key_value(kt) - mmax) - log_sum;
      ids[r * K + rank] = it;
    }
  }
  var real = 0u;
  for (var s = 0u; s < SEGS; s++) { real += real_in_list(s); }
  for (var t = lid; t < K; t += WG) {
    if (t >= real) {
      vals[r * K + t] = (key_value(0u) - mmax) - log_sum;
      ids[r * K + t] = EMPTY_ID;
    }
  }

  if (lid == 0u) {
    var sampled = 0.0;
    if (HAS_TOKENS) {
      let tok = tokens[r];
      if (tok < params.vocab) {
        let raw = part_info[(r * SEGS + tok / params.seg_len) * 4u + 1u];
        sampled = (raw - mmax) - log_sum;
      } else {
        flags |= 4u;
      }
    }
    let o = (params.info_row0 + r) * 4u;
    info[o] = mmax;
    info[o + 1u] = sampled;
    info[o + 2u] = f32(flags);
    info[o + 3u] = log_sum;
  }
}
