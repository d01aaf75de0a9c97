// Shared by sample_row.wgsl (sampling) and sample_replay.wgsl (the trainer's replay of the same
// processed distribution): the order-preserving float key, workgroup reductions, and the exact
// top-k / top-p threshold of a row found by bisection over the 32 key bits. The including kernel
// declares `logits: array<f32>` and a `params` struct with vocab, top_k, temperature, top_p.
override WG: u32 = 256u;

const NEG_INF_BITS: u32 = 0xff800000u;

var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;

// Order-preserving map of f32 to u32 (larger float, larger key); -0 maps with +0 (equal values).
fn key_of(f: f32) -> u32 {
  var b = bitcast<u32>(f);
  if (b == 0x80000000u) { b = 0u; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

fn reduce_sum_f(v: f32, lid: u32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_f[lid] += red_f[lid + s]; }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

fn reduce_max_f(v: f32, lid: u32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_f[lid] = max(red_f[lid], red_f[lid + s]); }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum_u(v: u32, lid: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_u[lid] += red_u[lid + s]; }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

fn reduce_max_u(v: u32, lid: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_u[lid] = max(red_u[lid], red_u[lid + s]); }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

fn reduce_min_u(v: u32, lid: u32) -> u32 {
  red_u[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red_u[lid] = min(red_u[lid], red_u[lid + s]); }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

// The max logit of the row being processed; every invocation sets it (from the workgroup
// reduction) before calling z_at.
var<private> row_max: f32;

// Processed logit of id i, shifted by the row's max: z_i = (logit_i - max) / temperature (only
// called when temperature > 0). Subtracting before dividing keeps the differences exact at small
// temperatures, where logit / temperature alone is so large that f32 rounds it coarsely (steps of
// 0.5 at logit 5, temperature 1e-6).
// The largest z is 0, so the kept log-sum-exp is log(kept_mass) and log p_i = z_i - that.
fn z_at(base: u32, i: u32) -> f32 {
  return (logits[base + i] - row_max) / params.temperature;
}

// Sum of exp(z) over z with key >= th.
fn kept_mass(base: u32, th: u32, lid: u32) -> f32 {
  var acc = 0.0;
  for (var i = lid; i < params.vocab; i += WG) {
    let z = z_at(base, i);
    if (key_of(z) >= th) { acc += exp(z); }
  }
  return reduce_sum_f(acc, lid);
}

// The truncation threshold key of the row at `base` (z from z_at): keep every z with
// key_of(z) >= the result. top-k: the largest key with count(key >= k*) >= top_k; top-p: then the
// largest key whose kept mass reaches top_p of the top-k mass.
fn truncation_threshold(base: u32, lid: u32) -> u32 {
  let V = params.vocab;
  var thk = 0u;
  if (params.top_k > 0u && params.top_k < V) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = thk | (1u << u32(bit));
      var c = 0u;
      for (var i = lid; i < V; i += WG) {
        if (key_of(z_at(base, i)) >= cand) { c++; }
      }
      if (reduce_sum_u(c, lid) >= params.top_k) { thk = cand; }
    }
  }
  if (params.top_p >= 1.0) { return thk; }
  let need = params.top_p * kept_mass(base, thk, lid);
  var thp = 0u;
  for (var bit = 31i; bit >= 0i; bit--) {
    let cand = thp | (1u << u32(bit));
    if (kept_mass(base, max(cand, thk), lid) >= need) { thp = cand; }
  }
  return max(thp, thk);
}
