// Prelude of matmul_skinny.wgsl for any shape and alignment: a 4-run may start anywhere and end
// early (a row of odd length), so it is up to four guarded scalar loads.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;

// Elements i .. i + valid − 1 of A, zeros after them.
fn load4A(i: u32, valid: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (valid > 0u) { v.x = a[i]; }
  if (valid > 1u) { v.y = a[i + 1u]; }
  if (valid > 2u) { v.z = a[i + 2u]; }
  if (valid > 3u) { v.w = a[i + 3u]; }
  return v;
}

fn load4B(i: u32, valid: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (valid > 0u) { v.x = b[i]; }
  if (valid > 1u) { v.y = b[i + 1u]; }
  if (valid > 2u) { v.z = b[i + 2u]; }
  if (valid > 3u) { v.w = b[i + 3u]; }
  return v;
}
