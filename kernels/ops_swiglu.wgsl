// SwiGLU's gating, fused: y = silu(g)·u on contiguous f32 as vec4 (two reads, one write), and its
// backward dg = dy·u·silu'(g), du = dy·silu(g) in one pass (three reads, two writes). Composed from
// silu and mul, the same work is 2 dispatches forward and 3 backward. silu and its derivative are
// written as in ops_unary.wgsl, in the composed ops' order of operations. A tail of up to
// three elements past the tensor is computed on padding the pool always allocates.
override WG: u32 = 256u;

struct Params { count4: u32 }

@group(0) @binding(0) var<storage, read> g: array<vec4f>;
@group(0) @binding(1) var<storage, read> u: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read_write> y: array<vec4f>;
// backward bindings (a separate entry point, so the numbers may repeat)
@group(0) @binding(3) var<storage, read> dy: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dg: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> du: array<vec4f>;

fn sigmoid(v: vec4f) -> vec4f { return 1.0 / (1.0 + exp(-v)); }

fn index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.x + wid.y * nwg.x) * WG + lid; }

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count4) { return; }
  let v = g[i];
  y[i] = (v * sigmoid(v)) * u[i];
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = index(wid, nwg, lid);
  if (i >= p.count4) { return; }
  let v = g[i];
  let s = sigmoid(v);
  let d = dy[i];
  dg[i] = (d * u[i]) * (s * (1.0 + v * (1.0 - s)));
  du[i] = d * (v * s);
}
