// Log-probs of one model at given ids, and the packing of log-probs captured at generation time.
// `gather`: one thread per (row, j): out[off + row*kk + j] = (x[row, ids[row, j]] − max) − log Σ (an id
//   out of range gives NaN, which the row kernel reports). x is one row tile of the logits.
// `pack_sampled`: one thread per row: stores a sampled-token log-prob captured at generation (and
//   checks the captured top-k log-probs and ids) into `info`, as topk_stream does from logits.
//   Flags: 1 a NaN/+Inf log-prob or one above LOGP_TOL, 4 an id out of range, 8 an id repeated in
//   the row (it would count twice in Z_approx).
override WG: u32 = 256u;

struct Params {
  vocab: u32,
  rows: u32,      // gather: rows in this tile; pack_sampled: all rows
  row0: u32,      // global index of the tile's first row
  kk: u32,        // ids per row
  info_row0: u32, // row offset of this model's region in `info`
  out_off: u32,   // element offset of the output region in `out`
}

@group(0) @binding(0) var<storage, read> x: array<f32>;          // logits tile, or captured lp [N]
@group(0) @binding(1) var<storage, read> ids: array<u32>;        // [N, kk]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // gather: output; pack: captured vals
@group(0) @binding(3) var<storage, read_write> info: array<f32>; // [regions*N, 4]
@group(0) @binding(4) var<uniform> params: Params;

fn bad_value(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7fffffffu) > 0x7f800000u || b == 0x7f800000u;
}

// A captured log-prob above this is not one (CAPTURED_LOGP_TOLERANCE in src/obrs/gpu/inputs.ts).
const LOGP_TOL: f32 = 1e-4;

fn bad_logp(v: f32) -> bool {
  return bad_value(v) || v > LOGP_TOL;
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.rows * params.kk) { return; }
  let r = t / params.kk;
  let grow = params.row0 + r;
  let id = ids[grow * params.kk + t % params.kk];
  var v = bitcast<f32>(0x7fc00000u);
  if (id < params.vocab) {
    let o = (params.info_row0 + grow) * 4u;
    v = (x[r * params.vocab + id] - info[o]) - info[o + 3u]; // (x − max) − log Σ
  }
  out[params.out_off + grow * params.kk + t % params.kk] = v;
}

@compute @workgroup_size(WG)
fn pack_sampled(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= params.rows) { return; }
  let lp = x[r];
  var flags = 0u;
  if (bad_logp(lp)) { flags |= 1u; }
  for (var j = 0u; j < params.kk; j++) {
    if (bad_logp(out[r * params.kk + j])) { flags |= 1u; }
    let id = ids[r * params.kk + j];
    if (id >= params.vocab) { flags |= 4u; }
    for (var i = 0u; i < j; i++) {
      if (ids[r * params.kk + i] == id) { flags |= 8u; }
    }
  }
  let o = (params.info_row0 + r) * 4u;
  info[o] = 0.0;
  info[o + 1u] = lp;
  info[o + 2u] = f32(flags);
  info[o + 3u] = 0.0;
}
