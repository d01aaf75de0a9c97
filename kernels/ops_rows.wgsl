// Shared by the row kernels (ops_norm, ops_softmax, ops_xent; prepended to their source): one
// workgroup of WG threads per row of C floats, the row read as a register tile of K vec4 per
// thread (a tile is WG·K vec4, at most 4096 floats): thread `lid` holds vec4 j·WG + lid of the
// tile, so each of its K loads is a coalesced 512-byte read per warp and all K are issued before
// any is used (up to K·16 = 64 bytes in flight per thread). A row of up to one tile is read from
// memory once and kept in registers for every pass the op needs; a longer row is walked tile by
// tile and re-read from cache for the later passes. The host sets K (1, 2 or 4: the fewest vec4
// per thread that hold the row, 4 past 1024 vec4) so the compiled loops are unrolled over exactly
// the registers a row needs: no masked-off loads (a CPU adapter runs those too) and no registers
// held for them (fewer registers, more workgroups per SM).
const WG: u32 = 256u;
const KMAX: u32 = 4u; // register arrays are declared this long; only the first K are used
override K: u32 = 4u;

var<workgroup> sh: array<vec4f, WG>;

// Workgroup sum (or max) of v in three barriers: 256 → 32 partials of 8 → 1 (barriers dominate
// row kernels on CPU adapters; the serial tails are short on GPUs). Fixed order: deterministic.
fn wg_reduce(v: vec4f, lid: u32, is_max: bool) -> vec4f {
  sh[lid] = v;
  workgroupBarrier();
  if (lid < 32u) {
    var s = sh[lid * 8u];
    for (var k = 1u; k < 8u; k++) {
      let o = sh[lid * 8u + k];
      s = select(s + o, max(s, o), is_max);
    }
    sh[lid * 8u] = s;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var s = sh[0];
    for (var k = 1u; k < 32u; k++) {
      let o = sh[k * 8u];
      s = select(s + o, max(s, o), is_max);
    }
    sh[0] = s;
  }
  workgroupBarrier();
  let r = sh[0];
  workgroupBarrier();
  return r;
}

fn wg_sum(v: f32, lid: u32) -> f32 { return wg_reduce(vec4f(v, 0.0, 0.0, 0.0), lid, false).x; }
fn wg_max(v: f32, lid: u32) -> f32 { return wg_reduce(vec4f(v), lid, true).x; }

fn hsum(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }
fn hmax(v: vec4f) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }

// -inf as a runtime value (a constant infinity is a shader-creation error in WGSL).
fn neg_inf(lid: u32) -> f32 { return bitcast<f32>(0xff800000u | (lid & 0u)); }

// Tiles of a row of c4 vec4, and vec4 j of tile t for thread lid (in range when < c4).
fn tiles(c4: u32) -> u32 { return (c4 + WG * K - 1u) / (WG * K); }
fn tq(t: u32, j: u32, lid: u32) -> u32 { return (t * K + j) * WG + lid; }
