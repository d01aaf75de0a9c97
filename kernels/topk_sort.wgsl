// Row top-K for any K <= V (the fallback when K is too large for topk_stream's workgroup buffer):
// a bitonic sort of each row's (key, id) pairs in global scratch, padded to P = 2^ceil(log2 V).
// `init` fills the scratch, `step` is one compare-exchange stage (dispatched log2(P)(log2(P)+1)/2
// times), `emit` writes the best K as log-probs (subtracting the max and log Σ that topk_stream stored).
// Order: larger value first, ties to the lower id; NaN/+Inf sort last (their rows are flagged).
override WG: u32 = 256u;

struct Params {
  vocab: u32,
  rows: u32,      // rows in this tile
  row0: u32,      // global index of the tile's first row
  pad: u32,       // P, a power of two >= vocab
  block: u32,     // bitonic block size of this stage
  stride: u32,    // compare distance of this stage
  k: u32,
  info_row0: u32, // row offset of this matrix's region in `info`
  sub0: u32,      // init: first row of this sub-tile inside the bound logits tile
}

@group(0) @binding(0) var<storage, read_write> keys: array<u32>; // [rows, P]
@group(0) @binding(1) var<storage, read_write> sids: array<u32>; // [rows, P]
@group(0) @binding(2) var<uniform> params: Params;
// init: the logits tile; emit: `info` of topk_stream (max in column 0, log Σ in column 3). One binding, two roles, so
// that every entry point's bindings are numbered without gaps.
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> vals: array<f32>; // emit only: [N, k]
@group(0) @binding(5) var<storage, read_write> ids: array<u32>;  // emit only: [N, k]

const EMPTY_ID: u32 = 0xffffffffu;

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

fn flat(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn init(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = flat(wid, nwg, lid);
  if (t >= params.rows * params.pad) { return; }
  let r = t / params.pad;
  let i = t % params.pad;
  var key = 0u;
  var id = EMPTY_ID;
  if (i < params.vocab) {
    let x = src[(params.sub0 + r) * params.vocab + i];
    let bits = bitcast<u32>(x);
    if (!((bits & 0x7fffffffu) > 0x7f800000u || bits == 0x7f800000u)) {
      key = order_key(x);
      id = i;
    }
  }
  keys[t] = key;
  sids[t] = id;
}

@compute @workgroup_size(WG)
fn step(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = flat(wid, nwg, lid);
  if (t >= params.rows * params.pad) { return; }
  let i = t % params.pad;
  let p = i ^ params.stride;
  if (p <= i) { return; }
  let q = t - i + p;
  let ka = keys[t];
  let ia = sids[t];
  let kb = keys[q];
  let ib = sids[q];
  if (better(kb, ib, ka, ia) == ((i & params.block) == 0u)) {
    keys[t] = kb; sids[t] = ib;
    keys[q] = ka; sids[q] = ia;
  }
}

@compute @workgroup_size(WG)
fn emit(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = flat(wid, nwg, lid);
  if (t >= params.rows * params.k) { return; }
  let r = t / params.k;
  let j = t % params.k;
  let grow = params.row0 + r;
  let o = (params.info_row0 + grow) * 4u;
  vals[grow * params.k + j] = (key_value(keys[r * params.pad + j]) - src[o]) - src[o + 3u];
  ids[grow * params.k + j] = sids[r * params.pad + j];
}
