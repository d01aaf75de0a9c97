// Test harness for rng.wgsl (prepended): writes hash3 and uniform_at at (seed, stream, i).
struct Params { seed: u32, stream: u32, count: u32 }
@group(0) @binding(0) var<storage, read_write> hashes: array<u32>;
@group(0) @binding(1) var<storage, read_write> uniforms: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i < params.count) {
    hashes[i] = rng_hash3(params.seed, params.stream + i / 7u, i);
    uniforms[i] = rng_uniform_at(params.seed, params.stream + i / 7u, i);
  }
}
