/**
 * SwiGLU's gate, `silu(gate) ⊙ up`, as one op: one kernel forward and one backward (both
 * gradients in a pass), where composing `silu` and `mul` takes two and three dispatches. Every
 * layer of a Qwen-style MLP runs it once per step.
 *
 * @module
 */
import swigluSource from "../../kernels/ops_swiglu.wgsl" with { type: "text" };
import joinedSource from "../../kernels/ops_swiglu_joined.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import { empty, launch1d, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { needsGrad, record } from "./tape.ts";

const swigluKernel: Kernel = { name: "ops_swiglu", code: swigluSource };
// The joined kernel's source is written over ELEM: scalar for any width, vec4 for multiples of 4.
const joinedKernels: Record<"f32" | "vec4f", Kernel> = {
  f32: { name: "ops_swiglu_joined", code: joinedSource.replaceAll("ELEM", "f32") },
  vec4f: { name: "ops_swiglu_joined_vec4", code: joinedSource.replaceAll("ELEM", "vec4f") },
};

/**
 * `silu(gate) · up` elementwise, for two f32 tensors of one shape (no broadcasting: both are
 * projections of the same hidden states).
 *
 * @example
 * ```ts
 * const h = swiglu(matmul(x, wGate.transpose()), matmul(x, wUp.transpose()));
 * ```
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  gate.expectDtype("swiglu", "f32");
  up.expectDtype("swiglu", "f32");
  if (!sameShape(gate.shape, up.shape)) {
    throw new RangeError(
      `swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have one shape`,
    );
  }
  const g = materialize(gate), u = materialize(up);
  const out = empty(gate.shape, "f32", "swiglu");
  const n4 = Math.ceil(out.size / 4);
  if (n4 > 0) {
    launch1d(runtime(), swigluKernel, "forward", [
      g.binding,
      u.binding,
      params([n4]),
      out.binding,
    ], n4);
  }
  return record(out, "swiglu", [gate, up], (dy) => {
    if (!needsGrad(gate) && !needsGrad(up)) return [null, null];
    // materialised again: the forward's copies of strided inputs belong to the forward's scope
    const gb = materialize(gate), ub = materialize(up), d = materialize(dy);
    const dg = empty(gate.shape, "f32", "grad");
    const du = empty(up.shape, "f32", "grad");
    if (n4 > 0) {
      launch1d(runtime(), swigluKernel, "backward", [
        gb.binding,
        ub.binding,
        params([n4]),
        d.binding,
        dg.binding,
        du.binding,
      ], n4);
    }
    if (!needsGrad(gate)) dg.dispose();
    if (!needsGrad(up)) du.dispose();
    return [needsGrad(gate) ? dg : null, needsGrad(up) ? du : null];
  });
}

/**
 * `silu(gate) · up` where `x` [..., 2H] holds gate in its first H columns and up in the last H:
 * the output of one matmul against the stacked [gate_proj; up_proj] weight. Returns [..., H]; one
 * kernel forward and one backward, which writes both halves of x's gradient (so the matmul before
 * it gets one gradient, and computes its input's and its weight's gradients with one product each).
 *
 * @example
 * ```ts
 * const h = swigluJoined(matmul(x, wGateUp.transpose())); // wGateUp [2I, C] → h [..., I]
 * ```
 */
export function swigluJoined(x: Tensor): Tensor {
  x.expectDtype("swigluJoined", "f32");
  const cols = x.shape[x.rank - 1];
  if (x.rank < 1 || cols % 2 !== 0) {
    throw new RangeError(
      `swigluJoined: x ${fmtShape(x.shape)} needs a last axis of even length (gate, then up)`,
    );
  }
  const H = cols / 2;
  const unit = H % 4 === 0 ? 4 : 1;
  const kernel = joinedKernels[unit === 4 ? "vec4f" : "f32"];
  const shape = [...x.shape.slice(0, -1), H];
  const count = (x.size / 2) / unit;
  const p = () => params([count, H / unit]);
  const xs = materialize(x);
  const out = empty(shape, "f32", "swiglu");
  if (count > 0) launch1d(runtime(), kernel, "forward", [xs.binding, p(), out.binding], count);
  return record(out, "swiglu", [x], (dy) => {
    // materialised again: the forward's copy of a strided input belongs to the forward's scope
    const xb = materialize(x), d = materialize(dy);
    const dx = empty(x.shape, "f32", "grad");
    if (count > 0) {
      launch1d(runtime(), kernel, "backward", [xb.binding, p(), d.binding, dx.binding], count);
    }
    return [dx];
  });
}
