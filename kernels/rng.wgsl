// Counter-based uniforms, an exact mirror of `hash3` / `uniformAt` in src/util/rng.ts: the value at
// (seed, stream, index) is a pure hash, so a kernel draws the same OBRS mask as the float64
// reference whatever the dispatch shape. u32 multiplies wrap in WGSL exactly as Math.imul does.
// This file has no bindings; the TypeScript side prepends it to the kernels that use it.

fn rng_mix32(x0: u32) -> u32 {
  var x = x0;
  x ^= x >> 16u;
  x *= 0x85ebca6bu;
  x ^= x >> 13u;
  x *= 0xc2b2ae35u;
  x ^= x >> 16u;
  return x;
}

fn rng_hash3(seed: u32, stream: u32, index: u32) -> u32 {
  var h = rng_mix32(seed ^ 0x9e3779b9u);
  h = rng_mix32(h ^ (stream * 0x85ebca77u));
  h = rng_mix32(h ^ (index * 0xc2b2ae3du));
  return h;
}

// 24-bit uniform in [0, 1): exactly representable in f32, equal to uniformAt's float64 value.
fn rng_uniform_at(seed: u32, stream: u32, index: u32) -> f32 {
  return f32(rng_hash3(seed, stream, index) >> 8u) / 16777216.0;
}
