// Prelude of matmul_skinny.wgsl for shapes whose A and B rows are whole vec4 (the rows the kernel
// reads along are a multiple of 4 floats, the buffer offsets multiples of 256 bytes): each 4-run
// starts on a vec4 and is either wholly inside (valid = 4) or wholly outside (valid = 0), so it is
// one 16-byte load.
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;

// Elements i .. i+3 of A (i a multiple of 4), or zeros when none is valid.
fn load4A(i: u32, valid: u32) -> vec4<f32> {
  if (valid == 0u) { return vec4<f32>(0.0); }
  return a[i >> 2u];
}

fn load4B(i: u32, valid: u32) -> vec4<f32> {
  if (valid == 0u) { return vec4<f32>(0.0); }
  return b[i >> 2u];
}
