/**
 * Matrix product, forward and backward, on top of `encodeMatmul` (src/tensor/matmul). A 2-D or
 * batched operand that is a transposed view of contiguous memory is passed to the kernel with its
 * trans flag instead of being copied. An unbatched product whose operand spans more than one
 * storage binding (`TensorRuntime.storageBindingLimit`) is recorded in blocks that each fit.
 *
 * @module
 */
import { encodeMatmul } from "../tensor/matmul/mod.ts";
import { empty, fillInPlace, materialize, runtime, type Tensor } from "../tensor/mod.ts";
import { broadcastShapes, fmtShape, sameShape } from "../tensor/shape.ts";
import { gradSink, needsGrad, record } from "./tape.ts";
import { expand, transpose } from "./views.ts";
import { splitPartialsInto } from "./grad_sums.ts";

/** A stored matrix operand: a buffer holding `batch` row-major matrices, maybe transposed. */
interface Operand {
  t: Tensor;
  trans: boolean;
}

// Reads the last two axes of `t` as rows×cols: plain when contiguous, transposed when `t` is a
// transpose view of a contiguous tensor (strides [..., 1, rows]); anything else is copied.
function operand(t: Tensor): Operand {
  if (t.isContiguous) return { t, trans: false };
  const r = t.rank;
  const rows = t.shape[r - 2], cols = t.shape[r - 1];
  let ok = t.isBindableOffset && t.strides[r - 2] === 1 && t.strides[r - 1] === rows;
  let acc = rows * cols;
  for (let i = r - 3; i >= 0 && ok; i--) {
    if (t.shape[i] !== 1 && t.strides[i] !== acc) ok = false;
    acc *= t.shape[i];
  }
  if (ok) return { t, trans: true };
  return { t: materialize(t), trans: false };
}

function flip(o: Operand): Operand {
  return { t: o.t, trans: !o.trans };
}

// C[batch, M, N] = op(A)·op(B) with the given stored operands; with `into` (a contiguous tensor
// of that many elements, bindable where it starts), C += op(A)·op(B) into it instead.
function mm(
  a: Operand,
  b: Operand,
  M: number,
  N: number,
  K: number,
  batch: number,
  strideB: number,
  shape: number[],
  into?: Tensor,
): Tensor {
  // a gradient summed into `into` (a weight's .grad): split-K partials join the pass's deferred sums
  const splitPartials = into ? splitPartialsInto(into) : undefined;
  const c = into ?? empty(shape, "f32", "matmul");
  if (c.size === 0 || (into && K === 0)) return c;
  if (K === 0) return fillInPlace(c, 0);
  const rt = runtime();
  rt.encode((bt, gpu) =>
    encodeMatmul(bt, gpu, {
      a: { buffer: a.t.storageBuffer, offset: a.t.offset * 4 },
      b: { buffer: b.t.storageBuffer, offset: b.t.offset * 4 },
      c: { buffer: c.storageBuffer, offset: c.offset * 4 },
      accumulate: into !== undefined,
      M,
      N,
      K,
      batchCount: batch,
      strideA: M * K,
      strideB,
      strideC: M * N,
      transA: a.trans,
      transB: b.trans,
      splitPartials,
      // an operand over one binding (a large vocabulary's classifier): computed in blocks
      maxBindingBytes: rt.storageBindingLimit,
    })
  );
  return c;
}

/**
 * Matrix product. `a` [..., M, K] with `b` [K, N] (the leading axes of `a` are folded into M), or
 * `a` [batch..., M, K] with `b` [batch..., K, N], the batch axes broadcast as in numpy (a size-1
 * or missing batch axis is copied to match; equal batch axes are read in place). Either operand
 * may be a transposed view (`w.transpose()`), read in place.
 *
 * @example
 * ```ts
 * const h = x.matmul(w);                  // [B, T, C] · [C, 4C]
 * const s = q.matmul(k.transpose(-2, -1)); // [B, H, T, D] · [B, H, D, T]
 * ```
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  a.expectDtype("matmul", "f32");
  b.expectDtype("matmul", "f32");
  const bad = () =>
    new RangeError(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not multiply`);
  if (a.rank < 2 || b.rank < 2) {
    throw new RangeError(
      `matmul: shapes ${fmtShape(a.shape)} and ${
        fmtShape(b.shape)
      } do not multiply (both need at least 2 axes; reshape a vector to [1, n] or [n, 1])`,
    );
  }
  const K = a.shape[a.rank - 1];
  if (b.shape[b.rank - 2] !== K) throw bad();
  const N = b.shape[b.rank - 1];
  if (b.rank === 2) {
    // Fold the leading axes of a into M: only a contiguous a can be read as [M·lead, K].
    const a2 = a.rank === 2 ? operand(a) : { t: materialize(a), trans: false };
    const M = a.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    const B = operand(b);
    const out = mm(a2, B, M, N, K, 1, K * N, [...a.shape.slice(0, -1), N]);
    return record(out, "matmul", [a, b], (g) => {
      const G: Operand = { t: materialize(g), trans: false };
      const da = needsGrad(a) ? mm(G, flip(B), M, K, N, 1, K * N, [...a.shape]) : null;
      // A weight's gradient is added straight into its `.grad` by the kernel (gradSink), saving a
      // temporary and an accumulate dispatch per weight per step.
      if (!needsGrad(b)) return [da, null];
      const sink = gradSink(b);
      if (sink && sink.transposed === B.trans) {
        if (B.trans) mm(flip(G), a2, N, K, M, 1, M * K, [N, K], sink.grad);
        else mm(flip(a2), G, K, N, M, 1, M * N, [K, N], sink.grad);
        return [da, null];
      }
      // b read transposed (a weight used as w.transpose()): its gradient is computed in the stored
      // layout, Gᵀ·a, and handed back as the transposed view, so what reaches w is contiguous and
      // is accumulated without a strided copy.
      const db = B.trans
        ? transpose(mm(flip(G), a2, N, K, M, 1, M * K, [N, K]))
        : mm(flip(a2), G, K, N, M, 1, M * N, [K, N]);
      return [da, db];
    });
  }
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  if (!sameShape(aBatch, bBatch)) {
    // numpy batch broadcasting ([2,3,4]·[1,4,5], [3,4]·[2,4,5]): expand both (a view whose backward
    // sums the gradient back) and multiply equal batches; the kernel reads the expanded copies.
    let batch: number[];
    try {
      batch = broadcastShapes(aBatch, bBatch, "matmul");
    } catch {
      throw new RangeError(
        `matmul: batch axes of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be broadcast`,
      );
    }
    return matmul(
      expand(a, [...batch, a.shape[a.rank - 2], K]),
      expand(b, [...batch, K, N]),
    );
  }
  const M = a.shape[a.rank - 2];
  const batch = a.shape.slice(0, -2).reduce((p, d) => p * d, 1);
  const A = operand(a);
  const B = operand(b);
  const out = mm(A, B, M, N, K, batch, K * N, [...a.shape.slice(0, -1), N]);
  return record(out, "matmul", [a, b], (g) => {
    const G: Operand = { t: materialize(g), trans: false };
    const da = mm(G, flip(B), M, K, N, batch, K * N, [...a.shape]);
    const db = B.trans // as in the 2-D case: the gradient in b's stored layout
      ? transpose(mm(flip(G), A, N, K, M, batch, M * K, [...b.shape.slice(0, -2), N, K]))
      : mm(flip(A), G, K, N, M, batch, M * N, [...b.shape]);
    return [da, db];
  });
}
