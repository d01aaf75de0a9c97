// Rotary position embedding (the "rotate half" pairing of Llama/Qwen: element j pairs with j + D/2),
// on a contiguous tensor read as [outer, T, H, D] (T_DIV = H) or [outer, H, T, D] (T_DIV = 1).
// Position of a row = offset + t; angle = pos · base^(−2j/D). `dir` = −1 rotates back (the backward).
const WG: u32 = 256u;

struct Params { pairs: u32, t: u32, t_div: u32, d: u32, offset: u32, base: f32, dir: f32, _p: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.pairs) { return; }
  let half = p.d / 2u;
  let j = i % half;
  let rowIndex = i / half; // which D-row
  let t = (rowIndex / p.t_div) % p.t;
  let inv_freq = pow(p.base, -2.0 * f32(j) / f32(p.d));
  let angle = f32(p.offset + t) * inv_freq;
  let c = cos(angle);
  let s = sin(angle) * p.dir;
  let a = rowIndex * p.d + j;
  let x1 = x[a];
  let x2 = x[a + half];
  y[a] = x1 * c - x2 * s;
  y[a + half] = x2 * c + x1 * s;
}
