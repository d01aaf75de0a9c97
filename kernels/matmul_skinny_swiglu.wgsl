// A prologue of matmul_skinny.wgsl: A read through SwiGLU's gate. The stored A is the joined
// gate/up projection x [M, 2K] (gate in columns 0..K-1, up in K..2K-1: params.strideA = 2K) and
// the kernel multiplies a[m, k] = silu(x[m, k]) · x[m, K + k], so the MLP's down projection runs
// without the separate swiglu dispatch (ops_swiglu_joined.wgsl) and its [M, K] intermediate.
//
// src/tensor/matmul/kernels.ts appends it to the vec4 or scalar prelude with that prelude's
// `load4A` renamed `load4X` (the raw loads of x); the arithmetic is ops_swiglu_joined.wgsl's
// forward, in the same order, so fused and composed agree to f32 rounding. Every workgroup
// recomputes the gate for the rows and k it reads (once per 4 columns: the kernel's FMAs per A
// load), which is the price of having no barrier and no staging in the k loop.
fn swigluSigmoid(v: vec4<f32>) -> vec4<f32> { return 1.0 / (1.0 + exp(-v)); }

// silu(gate) · up for elements i .. i + valid − 1 of the virtual A (i indexes x: row · 2K + k),
// zeros after them.
fn load4A(i: u32, valid: u32) -> vec4<f32> {
  if (valid == 0u) { return vec4<f32>(0.0); }
  let v = load4X(i, valid);
  let u = load4X(i + params.K, valid);
  return (v * swigluSigmoid(v)) * u;
}
