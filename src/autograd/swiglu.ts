/**
 * SwiGLU's gate, `silu(gate) ⊙ up`, as one op: one kernel forward and one backward (both
 * gradients in a pass), where composing `silu` and `mul` takes two and three dispatches. Every
 * layer of a Qwen-style MLP runs it once per step.
 *
 * @module
 */
import swigluSource from "../../kernels/ops_swiglu.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import { empty, launch1d, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { needsGrad, record } from "./tape.ts";

const swigluKernel: Kernel = { name: "ops_swiglu", code: swigluSource };

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
