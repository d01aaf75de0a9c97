// out = cond ? a : b with numpy broadcasting of all three (rank <= 8); the output is contiguous.
// cond is read as raw bits: COND_F32 = 1 compares it as a float (so -0.0 is false), else as an integer.
override WG: u32 = 256u;
override COND_F32: u32 = 1u;

struct Params {
  count: u32, rank: u32, c_off: u32, a_off: u32, b_off: u32, _p0: u32, _p1: u32, _p2: u32,
  shape: array<vec4u, 2>, cstr: array<vec4u, 2>, astr: array<vec4u, 2>, bstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> cond: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.count) { return; }
  var rem = i;
  var ic = p.c_off;
  var ia = p.a_off;
  var ib = p.b_off;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let q = u32(k) / 4u;
    let r = u32(k) % 4u;
    let n = p.shape[q][r];
    let idx = rem % n;
    rem = rem / n;
    ic += idx * p.cstr[q][r];
    ia += idx * p.astr[q][r];
    ib += idx * p.bstr[q][r];
  }
  let bits = cond[ic];
  let t = select(bits != 0u, bitcast<f32>(bits) != 0.0, COND_F32 == 1u);
  out[i] = select(b[ib], a[ia], t);
}
