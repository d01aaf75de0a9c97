// Benchmark inputs generated on the GPU (uploading 2.5 GB from JavaScript would dominate a run):
// logits of the rollout model ~ 3·N(0, 1) from the counter-based hash (rng.wgsl is prepended), and
// for mode 1 the policy's logits = those + 0.3·N(0, 1), so the two models overlap realistically.
override WG: u32 = 256u;

struct Params {
  count: u32, // elements in this tile
  first: u32, // global index of the tile's first element (keys the hash)
  seed: u32,
  mode: u32,  // 0: p_inf logits, 1: p_new logits
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

fn normal(seed: u32, stream: u32, index: u32) -> f32 {
  let u1 = max(rng_uniform_at(seed, stream, index), 1.0 / 16777216.0);
  let u2 = rng_uniform_at(seed, stream + 1u, index);
  return sqrt(-2.0 * log(u1)) * cos(6.2831853 * u2);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.count) { return; }
  let i = params.first + t;
  var x = 3.0 * normal(params.seed, 0u, i);
  if (params.mode == 1u) { x += 0.3 * normal(params.seed, 2u, i); }
  out[t] = x;
}
