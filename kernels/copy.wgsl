// Copies `src` to `dst` as vec4<f32>: the bandwidth yardstick every memory-bound kernel is
// compared against (it reads and writes each byte once). The workgroup grid may be 2-D when the
// element count needs more than 65,535 workgroups.
override WG: u32 = 256u;

struct Params { count: u32 } // number of vec4 elements

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < params.count) {
    dst[i] = src[i];
  }
}
