// Elementwise unary ops on contiguous f32 as vec4 (one read, one write: memory-bound). OP selects
// the function; `a`, `b` are its scalar parameters. `forward`: y = f(x). `backward`: dx = g·f'(x, y).
// A tail of up to three elements past the tensor is computed on padding the pool always allocates.
override WG: u32 = 256u;
override OP: u32 = 0u;

const NEG: u32 = 0u;
const EXP: u32 = 1u;
const LOG: u32 = 2u;
const SQRT: u32 = 3u;
const POW: u32 = 4u;     // x^a
const AFFINE: u32 = 5u;  // a·x + b
const CLAMP: u32 = 6u;   // clamp(x, a, b)
const SILU: u32 = 7u;
const GELU: u32 = 8u;    // tanh approximation (GPT-2)
const RELU: u32 = 9u;
const SIGMOID: u32 = 10u;

struct Params { count4: u32, _p: u32, a: f32, b: f32 }

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;
// backward bindings (a separate entry point, so the numbers may repeat)
@group(0) @binding(1) var<storage, read> yb: array<vec4f>;
@group(0) @binding(3) var<storage, read> g: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4f>;

// x^a for any sign of x: integer exponents keep the real result (odd ones the sign, -0 included),
// other exponents of a negative base give NaN (sqrt of a negative number) as in real arithmetic;
// x^0 = 1. WGSL leaves pow(0, a) undefined for a <= 0 (llvmpipe returns 0), so 0^a is set
// explicitly: +inf for a < 0, 0 for a > 0.
fn spow(v: vec4f, a: f32) -> vec4f {
  if (a == 0.0) { return vec4f(1.0); }
  if (a == 1.0) { return v; }
  if (a == 2.0) { return v * v; } // exact, and the common case
  let av = abs(v);
  let zero = av == vec4f(0.0);
  let inf = bitcast<vec4f>(bitcast<vec4u>(av) | vec4u(0x7f800000u)); // +inf where av == 0
  let m = select(pow(av, vec4f(a)), select(vec4f(0.0), inf, a < 0.0), zero);
  if (floor(a) != a) { return select(m, sqrt(-1.0 - av), v < vec4f(0.0)); }
  let odd = (abs(a) % 2.0) == 1.0;
  let negSign = (bitcast<vec4u>(v) & vec4u(0x80000000u)) != vec4u(0u);
  return select(m, -m, negSign & vec4<bool>(odd));
}

// NaN test on the bits: `x != x` may be folded to false by the shader compiler (llvmpipe does).
fn isnan4(x: vec4f) -> vec4<bool> {
  return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u);
}

fn sigmoid(v: vec4f) -> vec4f { return 1.0 / (1.0 + exp(-v)); }

const GELU_K: f32 = 0.7978845608028654; // sqrt(2/pi)

fn gelu_inner(v: vec4f) -> vec4f { return tanh(clamp(GELU_K * (v + 0.044715 * v * v * v), vec4f(-15.0), vec4f(15.0))); }

fn f(v: vec4f) -> vec4f {
  switch OP {
    case NEG: { return -v; }
    case EXP: { return exp(v); }
    case LOG: { return log(v); }
    case SQRT: { return sqrt(v); }
    case POW: { return spow(v, p.a); }
    case AFFINE: { return p.a * v + p.b; }
    case CLAMP: { return select(clamp(v, vec4f(p.a), vec4f(p.b)), v, isnan4(v)); } // NaN stays
    case SILU: { return v * sigmoid(v); }
    case GELU: { return 0.5 * v * (1.0 + gelu_inner(v)); }
    case RELU: { return select(max(v, vec4f(0.0)), v, isnan4(v)); }
    case SIGMOID: { return sigmoid(v); }
    default: { return v; }
  }
}

fn df(v: vec4f, o: vec4f) -> vec4f {
  switch OP {
    case NEG: { return vec4f(-1.0); }
    case EXP: { return o; }
    case LOG: { return 1.0 / v; }
    case SQRT: { return 0.5 / o; }
    case POW: { if (p.a == 0.0) { return vec4f(0.0); } return p.a * spow(v, p.a - 1.0); } // x^0 = 1: flat
    case AFFINE: { return vec4f(p.a); }
    case CLAMP: { return select(vec4f(0.0), vec4f(1.0), v >= vec4f(p.a) & v <= vec4f(p.b)); }
    case SILU: { let s = sigmoid(v); return s * (1.0 + v * (1.0 - s)); }
    case GELU: {
      let t = gelu_inner(v);
      let dt = (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * v * v);
      return 0.5 * (1.0 + t) + 0.5 * v * dt;
    }
    case RELU: { return select(vec4f(0.0), vec4f(1.0), v > vec4f(0.0)); }
    case SIGMOID: { return o * (1.0 - o); }
    default: { return vec4f(1.0); }
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.count4) { y[i] = f(x[i]); }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.count4) { dx[i] = g[i] * df(x[i], yb[i]); }
}
