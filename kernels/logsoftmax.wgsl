// Row log-sum-exp and log-softmax over x [rows, V].
//
// `lse`: one workgroup per row. Each thread issues LOADS independent vec4 loads (16 · LOADS bytes)
// before using any of them, so that a 256-thread workgroup keeps 16 KiB of the row in flight at
// LOADS = 4: by Little's law ~20 KB per SM must be in flight to read at 3 TB/s, and the scalar
// version (bench/obrs/v1_logsoftmax.wgsl: one 4-byte load, then branches, then the next) kept
// 1 KiB per workgroup and read at 1.66 TB/s on the H100. The loaded values are folded into the
// thread's online (max, Σ exp(x − max)) with one rescale per step (their max first) and one exp
// per element. The threads' partials are combined by a fixed tree, so the result is
// deterministic. Rows are split as a scalar head (up to 3 elements, to reach a 16-byte boundary),
// an aligned vec4 body and a scalar tail, so any V and any row start take the vec4 body; with
// VEC4 = false the body is read as scalars in the same order and gives identical results.
//
// Non-finite entries, tested by bits (the compiler may fold `v != v` to false): -Inf entries add
// nothing; an all -Inf row gives lse = -Inf (its log-probs NaN); a NaN anywhere in a row makes
// its lse and log-probs NaN; otherwise a +Inf makes the lse +Inf. Callers that need counts use
// topk_stream's flags.
//
// `apply`: one thread per element, out = x - lse[row].
override WG: u32 = 256u;   // power of two, >= 8
override LOADS: u32 = 4u;  // vec4 loads per thread per step: 1, 2, 4 or 8
override VEC4: bool = true; // read the body through `x4` (the same tile as `x`)

struct Params {
  vocab: u32,
  rows: u32, // rows in this tile
  row0: u32, // global index of the tile's first row (indexes `lse`)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> lse_out: array<f32>; // [N]
@group(0) @binding(2) var<uniform> params: Params;
// Binding 3 differs by entry point (bindings are per entry point; the repository's ops kernels
// do the same): the tile's log-probs for `apply`, the vec4 view of `x` for `lse`.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;

const NEG_INF_BITS: u32 = 0xff800000u;
const BAD_NAN: u32 = 1u;
const BAD_POS_INF: u32 = 2u;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> red_bad: array<u32, WG>;

fn neg_inf4() -> vec4<f32> {
  return vec4<f32>(bitcast<f32>(NEG_INF_BITS));
}

// A thread's running state: max, Σ exp(x − max) (0 while max is -Inf), and BAD_* bits.
struct Acc {
  m: f32,
  s: f32,
  bad: u32,
}

// NaN and +Inf are recorded in `bad` and replaced by -Inf, which adds nothing to Σ.
fn clean(v: vec4<f32>, acc: ptr<function, Acc>) -> vec4<f32> {
  let b = bitcast<vec4<u32>>(v);
  let nan = (b & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
  let pos_inf = b == vec4<u32>(0x7f800000u);
  if (any(nan)) { (*acc).bad |= BAD_NAN; }
  if (any(pos_inf)) { (*acc).bad |= BAD_POS_INF; }
  return select(v, neg_inf4(), nan | pos_inf);
}

// Raises the running max to the step's max `gm` (one rescale of Σ); returns whether the max is
// finite, i.e. whether the step's exps are to be added.
fn raise(acc: ptr<function, Acc>, gm: f32) -> bool {
  if (gm > (*acc).m) {
    if (bitcast<u32>((*acc).m) != NEG_INF_BITS) { (*acc).s *= exp((*acc).m - gm); }
    (*acc).m = gm;
  }
  return bitcast<u32>((*acc).m) != NEG_INF_BITS;
}

fn hsum(e: vec4<f32>) -> f32 {
  return (e.x + e.y) + (e.z + e.w);
}

fn hmax(v: vec4<f32>) -> f32 {
  return max(max(v.x, v.y), max(v.z, v.w));
}

// Body vec4 q of the row (its elements start at element `first`); -Inf past the body's `nvec`.
fn load_body(first: u32, q: u32, nvec: u32) -> vec4<f32> {
  if (q >= nvec) { return neg_inf4(); }
  let e = first + 4u * q;
  if (VEC4) { return x4[e / 4u]; }
  return vec4<f32>(x[e], x[e + 1u], x[e + 2u], x[e + 3u]);
}

@compute @workgroup_size(WG)
fn lse(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
       @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= params.rows) { return; }
  let vocab = params.vocab;
  let base = r * vocab;
  // Head: elements before the first 16-byte boundary of the row; body: whole vec4s; tail: rest.
  let head = min(vocab, (4u - base % 4u) % 4u);
  let nvec = (vocab - head) / 4u;
  let tail = vocab - head - 4u * nvec;
  let first = base + head;
  var acc = Acc(bitcast<f32>(NEG_INF_BITS), 0.0, 0u);

  // Threads 0-2 take the head, threads 4-6 the tail (WG >= 8), as one step of one element.
  var h = bitcast<f32>(NEG_INF_BITS);
  if (lid < head) {
    h = x[base + lid];
  } else if (lid >= 4u && lid - 4u < tail) {
    h = x[first + 4u * nvec + lid - 4u];
  }
  let hc = clean(vec4<f32>(h, neg_inf4().xyz), &acc);
  if (raise(&acc, hc.x)) { acc.s += exp(hc.x - acc.m); }

  // Body: each step loads LOADS vec4 (coalesced: vec4 q0 + u·WG + lid) before using any.
  for (var q0 = 0u; q0 < nvec; q0 += WG * LOADS) {
    let q = q0 + lid;
    let v0 = load_body(first, q, nvec);
    var v1 = neg_inf4();
    var v2 = neg_inf4();
    var v3 = neg_inf4();
    var v4 = neg_inf4();
    var v5 = neg_inf4();
    var v6 = neg_inf4();
    var v7 = neg_inf4();
    if (LOADS > 1u) { v1 = load_body(first, q + WG, nvec); }
    if (LOADS > 2u) {
      v2 = load_body(first, q + 2u * WG, nvec);
      v3 = load_body(first, q + 3u * WG, nvec);
    }
    if (LOADS > 4u) {
      v4 = load_body(first, q + 4u * WG, nvec);
      v5 = load_body(first, q + 5u * WG, nvec);
      v6 = load_body(first, q + 6u * WG, nvec);
      v7 = load_body(first, q + 7u * WG, nvec);
    }
    let c0 = clean(v0, &acc);
    var c1 = v1;
    var c2 = v2;
    var c3 = v3;
    var c4 = v4;
    var c5 = v5;
    var c6 = v6;
    var c7 = v7;
    var mx = c0;
    if (LOADS > 1u) {
      c1 = clean(v1, &acc);
      mx = max(mx, c1);
    }
    if (LOADS > 2u) {
      c2 = clean(v2, &acc);
      c3 = clean(v3, &acc);
      mx = max(mx, max(c2, c3));
    }
    if (LOADS > 4u) {
      c4 = clean(v4, &acc);
      c5 = clean(v5, &acc);
      c6 = clean(v6, &acc);
      c7 = clean(v7, &acc);
      mx = max(mx, max(max(c4, c5), max(c6, c7)));
    }
    if (raise(&acc, hmax(mx))) {
      let m = vec4<f32>(acc.m);
      var e = exp(c0 - m);
      if (LOADS > 1u) { e += exp(c1 - m); }
      if (LOADS > 2u) { e += exp(c2 - m) + exp(c3 - m); }
      if (LOADS > 4u) { e += (exp(c4 - m) + exp(c5 - m)) + (exp(c6 - m) + exp(c7 - m)); }
      acc.s += hsum(e);
    }
  }

  red_m[lid] = acc.m;
  red_s[lid] = acc.s;
  red_bad[lid] = acc.bad;
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
      red_bad[lid] = red_bad[lid] | red_bad[lid + half];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var result = red_m[0] + log(red_s[0]); // -Inf + log(0) = -Inf for an all -Inf row
    if ((red_bad[0] & BAD_POS_INF) != 0u) { result = bitcast<f32>(0x7f800000u); }
    if ((red_bad[0] & BAD_NAN) != 0u) { result = bitcast<f32>(0x7fc00000u); }
    lse_out[params.row0 + r] = result;
  }
}

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.rows * params.vocab) { return; }
  out[t] = x[t] - lse_out[params.row0 + t / params.vocab];
}
