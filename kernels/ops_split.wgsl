// Splitting the last axis of a contiguous [rows, cols] tensor into two or three contiguous pieces
// [rows, w_p] in one pass, and its backward: joining the pieces' gradients into one [rows, cols]
// tensor in one pass. ELEM is f32, or vec4f when every width is a multiple of 4 (the host
// substitutes it and passes widths in ELEM units). A transformer's joined q/k/v projection is one
// matmul whose output this splits, so that q, k and v are contiguous for the ops that read them,
// and whose gradient this joins, so that one matmul computes the input's gradient and one the
// weight's (instead of three each and two adds).
override WG: u32 = 256u;

struct Params {
  count: u32,   // rows · cols, in ELEM units
  cols: u32,    // w0 + w1 + w2
  w0: u32,
  w1: u32,
  w2: u32,      // 0 with two pieces
  present: u32, // join: bit p set when piece p has a gradient (the others' columns are zero)
}

@group(0) @binding(0) var<storage, read> x: array<ELEM>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> o0: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> o1: array<ELEM>;
@group(0) @binding(4) var<storage, read_write> o2: array<ELEM>;
// join bindings (separate entry points, so the numbers may repeat)
@group(0) @binding(0) var<storage, read_write> dx: array<ELEM>;
@group(0) @binding(2) var<storage, read> g0: array<ELEM>;
@group(0) @binding(3) var<storage, read> g1: array<ELEM>;
@group(0) @binding(4) var<storage, read> g2: array<ELEM>;

fn index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.x + wid.y * nwg.x) * WG + lid; }

@compute @workgroup_size(WG)
fn split2(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let m = i / p.cols;
  let c = i - m * p.cols;
  if (c < p.w0) { o0[m * p.w0 + c] = x[i]; } else { o1[m * p.w1 + c - p.w0] = x[i]; }
}

@compute @workgroup_size(WG)
fn split3(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let m = i / p.cols;
  let c = i - m * p.cols;
  let c2 = p.w0 + p.w1;
  if (c < p.w0) {
    o0[m * p.w0 + c] = x[i];
  } else if (c < c2) {
    o1[m * p.w1 + c - p.w0] = x[i];
  } else {
    o2[m * p.w2 + c - c2] = x[i];
  }
}

@compute @workgroup_size(WG)
fn join2(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let m = i / p.cols;
  let c = i - m * p.cols;
  var v = ELEM(0.0);
  if (c < p.w0) {
    if ((p.present & 1u) != 0u) { v = g0[m * p.w0 + c]; }
  } else if ((p.present & 2u) != 0u) {
    v = g1[m * p.w1 + c - p.w0];
  }
  dx[i] = v;
}

@compute @workgroup_size(WG)
fn join3(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let m = i / p.cols;
  let c = i - m * p.cols;
  let c2 = p.w0 + p.w1;
  var v = ELEM(0.0);
  if (c < p.w0) {
    if ((p.present & 1u) != 0u) { v = g0[m * p.w0 + c]; }
  } else if (c < c2) {
    if ((p.present & 2u) != 0u) { v = g1[m * p.w1 + c - p.w0]; }
  } else if ((p.present & 4u) != 0u) {
    v = g2[m * p.w2 + c - c2];
  }
  dx[i] = v;
}
