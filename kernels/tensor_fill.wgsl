// Fills a 32-bit buffer: a constant bit pattern, or seeded uniform/normal draws from the counter
// hash of src/util/rng.ts (hash3 mirrored exactly, so a CPU reference reproduces every value).
// A tensor larger than one storage binding is filled block by block: `base` is the index (in the
// whole tensor) of the bound block's first element, so every element draws the same counter.
override WG: u32 = 256u;

struct Params { count: u32, seed: u32, stream: u32, bits: u32, a: f32, b: f32, base: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

fn mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x85ebca6bu;
  x ^= x >> 13u; x *= 0xc2b2ae35u;
  x ^= x >> 16u;
  return x;
}

fn hash3(seed: u32, stream: u32, index: u32) -> u32 {
  var h = mix32(seed ^ 0x9e3779b9u);
  h = mix32(h ^ (stream * 0x85ebca77u));
  return mix32(h ^ (index * 0xc2b2ae3du));
}

fn unit(index: u32) -> f32 { // [0, 1), 24 bits: exact in f32, equal to uniformAt()
  return f32(hash3(p.seed, p.stream, index) >> 8u) / 16777216.0;
}

fn flat(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.x + wid.y * nwg.x) * WG + lid; }

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat(wid, nwg, lid);
  if (i < p.count) { out[i] = p.bits; }
}

@compute @workgroup_size(WG)
fn rand_uniform(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = flat(wid, nwg, lid);
  if (i < p.count) { out[i] = bitcast<u32>(p.a + (p.b - p.a) * unit(p.base + i)); }
}

// Box–Muller on draws 2i and 2i+1 (the first shifted to (0, 1] so that log never sees 0).
@compute @workgroup_size(WG)
fn rand_normal(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = flat(wid, nwg, lid);
  if (i < p.count) {
    let u1 = unit(2u * (p.base + i)) + 1.0 / 16777216.0;
    let u2 = unit(2u * (p.base + i) + 1u);
    let z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    out[i] = bitcast<u32>(p.a + p.b * z);
  }
}
