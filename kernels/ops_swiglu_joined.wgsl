// SwiGLU's gating on the joined gate/up projection: x is [rows, 2·H] with the gate in columns
// 0..H-1 and up in H..2H-1 of each row (one matmul against the stacked [gate_proj; up_proj]
// weight), y = silu(gate)·up is [rows, H]; the backward writes both halves of dx in one pass.
// The arithmetic is ops_swiglu.wgsl's, in the same order. ELEM is f32, or vec4f when H is a
// multiple of 4 (the host substitutes it and passes H in ELEM units).
override WG: u32 = 256u;

struct Params { count: u32, half: u32 } // rows · H and H, in ELEM units

@group(0) @binding(0) var<storage, read> x: array<ELEM>;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> y: array<ELEM>;
// backward bindings (a separate entry point, so the numbers may repeat)
@group(0) @binding(2) var<storage, read> dy: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> dx: array<ELEM>;

fn sigmoid(v: ELEM) -> ELEM { return 1.0 / (1.0 + exp(-v)); }

fn index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.x + wid.y * nwg.x) * WG + lid; }

// Where the gate of output element i sits in x (up is `half` further on).
fn gateAt(i: u32) -> u32 {
  let m = i / p.half;
  return i + m * p.half;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let j = gateAt(i);
  let v = x[j];
  y[i] = (v * sigmoid(v)) * x[j + p.half];
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count) { return; }
  let j = gateAt(i);
  let v = x[j];
  let u = x[j + p.half];
  let s = sigmoid(v);
  let d = dy[i];
  dx[j] = (d * u) * (s * (1.0 + v * (1.0 - s)));
  dx[j + p.half] = d * (v * s);
}
