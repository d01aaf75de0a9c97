// Sums the partial products of a split-K matmul: C (+)= Σ_s W[s], element by element.
// W holds `splits` consecutive M×N partials (written by matmul_vec4.wgsl or matmul_tiled.wgsl
// with kChunk > 0). Scalar so that any M·N works; it is memory-bound either way, and small next to
// the product. The grid may be 2-D when C needs more than 65,535 workgroups.
override ACCUMULATE: bool = false; // C += Σ W[s] instead of C = Σ W[s]
override WG: u32 = 256u;

struct Params {
  count: u32, // elements per partial (M·N)
  splits: u32,
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.count) { return; }
  var sum = w[i];
  for (var s = 1u; s < params.splits; s++) {
    sum += w[s * params.count + i];
  }
  if (ACCUMULATE) {
    c[i] += sum;
  } else {
    c[i] = sum;
  }
}
