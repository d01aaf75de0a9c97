// Shared by ops_norm_rope.wgsl and ops_qkv_heads.wgsl (prepended to each; WGSL has no includes):
// rows spread over s lanes each, summed through workgroup memory. The including kernel declares
// the `WG` override; `sh` is also its scratch for its own lane folds.
var<workgroup> sh: array<vec2f, WG>;

// Sum of val over the s lanes of each row (s a power of two, the same for the whole workgroup): a
// halving tree, every lane gets its row's sum.
fn row_sum(val: f32, lid: u32, s: u32) -> f32 {
  sh[lid] = vec2f(val, 0.0);
  workgroupBarrier();
  let lane = lid % s;
  for (var o = s / 2u; o > 0u; o /= 2u) {
    if (lane < o) { sh[lid] += sh[lid + o]; }
    workgroupBarrier();
  }
  let r = sh[lid - lane].x;
  workgroupBarrier();
  return r;
}
