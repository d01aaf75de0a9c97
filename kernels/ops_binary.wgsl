// Elementwise binary ops with numpy broadcasting. `vec4_main`: both inputs contiguous with the
// output's shape (vec4, memory-bound); `vec4_rows` and `vec4_scalar`: the same with b a broadcast
// row (bias) or one element. `strided`: any shapes/strides (rank <= 8), the output is contiguous. `accumulate`: out += b in place (gradient accumulation), vec4.
override WG: u32 = 256u;
override OP: u32 = 0u;

const ADD: u32 = 0u;
const SUB: u32 = 1u;
const MUL: u32 = 2u;
const DIV: u32 = 3u;
const POW: u32 = 4u;
const MAX: u32 = 5u;
const MIN: u32 = 6u;
const MAXMASK: u32 = 7u; // 1 where a > b, 0.5 where a == b, 0 else: the share of d max(a,b)/da
const EQ: u32 = 8u;
const GT: u32 = 9u;
const LT: u32 = 10u;

struct Params {
  count: u32, rank: u32, a_off: u32, b_off: u32,
  shape: array<vec4u, 2>, astr: array<vec4u, 2>, bstr: array<vec4u, 2>,
}

@group(0) @binding(0) var<storage, read> a4: array<vec4f>;
@group(0) @binding(1) var<storage, read> b4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> o4: array<vec4f>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(0) var<storage, read> a1: array<f32>;
@group(0) @binding(1) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read_write> o1: array<f32>;

// x^y elementwise with the conventions of ops_unary.wgsl's spow (0^y set explicitly: WGSL leaves
// pow(0, y <= 0) undefined).
fn spow(x: vec4f, y: vec4f) -> vec4f {
  let ax = abs(x);
  let inf = bitcast<vec4f>(bitcast<vec4u>(ax) | vec4u(0x7f800000u)); // +inf where ax == 0
  let m = select(pow(ax, y), select(vec4f(0.0), inf, y < vec4f(0.0)), ax == vec4f(0.0));
  let isInt = floor(y) == y;
  let odd = isInt & (abs(y) % vec4f(2.0)) == vec4f(1.0);
  let negSign = (bitcast<vec4u>(x) & vec4u(0x80000000u)) != vec4u(0u);
  let signed = select(m, -m, odd & negSign);
  let real = select(m, select(sqrt(-1.0 - ax), signed, isInt), x < vec4f(0.0));
  return select(select(real, signed, ax == vec4f(0.0)), vec4f(1.0), y == vec4f(0.0));
}

// NaN test on the bits: `x != x` may be folded to false by the shader compiler (llvmpipe does).
fn isnan4(x: vec4f) -> vec4<bool> {
  return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u);
}

fn f(a: vec4f, b: vec4f) -> vec4f {
  switch OP {
    case ADD: { return a + b; }
    case SUB: { return a - b; }
    case MUL: { return a * b; }
    case DIV: { return a / b; }
    case POW: { return spow(a, b); }
    // NaN-propagating max/min (WGSL's max may drop a NaN)
    case MAX: { return select(select(b, a, a >= b), a + b, isnan4(a) | isnan4(b)); }
    case MIN: { return select(select(b, a, a <= b), a + b, isnan4(a) | isnan4(b)); }
    case MAXMASK: { return select(select(vec4f(0.0), vec4f(0.5), a == b), vec4f(1.0), a > b); }
    case EQ: { return select(vec4f(0.0), vec4f(1.0), a == b); }
    case GT: { return select(vec4f(0.0), vec4f(1.0), a > b); }
    case LT: { return select(vec4f(0.0), vec4f(1.0), a < b); }
    default: { return a; }
  }
}

@compute @workgroup_size(WG)
fn vec4_main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.count) { o4[i] = f(a4[i], b4[i]); }
}

// b broadcast along the leading axes of a (a bias row): b holds p.rank vec4, a and out are dense.
@compute @workgroup_size(WG)
fn vec4_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.count) { o4[i] = f(a4[i], b4[i % p.rank]); }
}

// b is one element.
@compute @workgroup_size(WG)
fn vec4_scalar(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.count) { o4[i] = f(a4[i], vec4f(b1[0])); }
}

@compute @workgroup_size(WG)
fn strided(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.count) { return; }
  var rem = i;
  var ia = p.a_off;
  var ib = p.b_off;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let q = u32(k) / 4u;
    let r = u32(k) % 4u;
    let n = p.shape[q][r];
    let idx = rem % n;
    rem = rem / n;
    ia += idx * p.astr[q][r];
    ib += idx * p.bstr[q][r];
  }
  o1[i] = f(vec4f(a1[ia]), vec4f(b1[ib])).x;
}

@group(0) @binding(0) var<storage, read> src4: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> acc4: array<vec4f>;
@group(0) @binding(2) var<uniform> pa: Params;

@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < pa.count) { acc4[i] += src4[i]; }
}
