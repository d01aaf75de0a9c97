// Embedding lookup out[n, c] = table[ids[n], c], and a deterministic scatter-add backward without
// atomics: `rank` places each position n at its index in the order sorted by (id, n) (O(N²) compares
// of 4-byte ids, cheap next to the [N, C] gradient), then `scatter` lets the first position of each
// run of equal ids sum the run's gradient rows in ascending n. The sum order is fixed, so the
// gradient is bit-identical from run to run.
//
// A table larger than one storage binding is bound in blocks of rows (src/autograd/embedding.ts):
// each dispatch sees rows row0 .. row0 + rows - 1 of the [v, c] table (or of its gradient) and
// handles the ids that fall there; the first block's lookup also writes the NaN rows of bad ids.
// A whole table is one block (row0 0, rows v).
const WG: u32 = 256u;
override ACCUMULATE: bool = false; // scatter adds into dtable (a weight's .grad) instead of writing

struct Params { n: u32, c: u32, v: u32, row0: u32, rows: u32, flagBad: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn lookup(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n * p.c) { return; }
  let id = ids[i / p.c];
  if (id < 0 || u32(id) >= p.v) { // NaN: bad id
    if (p.flagBad != 0u) { out[i] = sqrt(-1.0 - abs(table[0])); }
    return;
  }
  let r = u32(id) - p.row0; // wraps past `rows` for an id before the block
  if (r >= p.rows) { return; }
  out[i] = table[r * p.c + i % p.c];
}

@group(0) @binding(0) var<storage, read> rids: array<i32>;
@group(0) @binding(1) var<storage, read_write> perm: array<u32>;
@group(0) @binding(2) var<uniform> pr: Params;

var<workgroup> tile: array<i32, WG>;

// rank of position n = #{m : (ids[m], m) < (ids[n], n)}; the ids are streamed through workgroup
// memory in tiles so each is read from global memory once per workgroup, not once per thread.
@compute @workgroup_size(WG)
fn rank(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  let valid = n < pr.n;
  let id = rids[min(n, pr.n - 1u)];
  var r = 0u;
  for (var base = 0u; base < pr.n; base += WG) {
    tile[lid] = rids[min(base + lid, pr.n - 1u)];
    workgroupBarrier();
    let count = min(WG, pr.n - base);
    for (var j = 0u; j < count; j++) {
      let o = tile[j];
      r += select(0u, 1u, o < id || (o == id && base + j < n));
    }
    workgroupBarrier();
  }
  if (valid) { perm[r] = n; }
}

@group(0) @binding(0) var<storage, read> g: array<f32>;      // [n, c]
@group(0) @binding(1) var<storage, read> sids: array<i32>;
@group(0) @binding(2) var<storage, read> sperm: array<u32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>; // rows row0.. of [v, c], zeroed
@group(0) @binding(4) var<uniform> ps: Params;

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ps.n * ps.c) { return; }
  let s = i / ps.c;
  let col = i % ps.c;
  let id = sids[sperm[s]];
  if (s > 0u && sids[sperm[s - 1u]] == id) { return; } // not the first of its run
  if (id < 0 || u32(id) >= ps.v) { return; }
  let r = u32(id) - ps.row0;
  if (r >= ps.rows) { return; }
  var acc = 0.0;
  for (var k = s; k < ps.n && sids[sperm[k]] == id; k++) { acc += g[sperm[k] * ps.c + col]; }
  if (ACCUMULATE) {
    dtable[r * ps.c + col] += acc;
  } else {
    dtable[r * ps.c + col] = acc;
  }
}
