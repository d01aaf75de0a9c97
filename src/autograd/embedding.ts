/**
 * Embedding lookup with a deterministic scatter-add backward (see kernels/ops_embedding.wgsl: a
 * rank-by-(id, position) permutation then one summing thread per run of equal ids and column; no
 * atomics, so the gradient is bit-identical across runs).
 *
 * @module
 */
import embeddingSource from "../../kernels/ops_embedding.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import {
  empty,
  launch1d,
  materialize,
  params,
  runtime,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";
import { record } from "./tape.ts";

const embeddingKernel: Kernel = { name: "ops_embedding", code: embeddingSource };

/**
 * Rows of `table` [V, C] at i32 `ids` [...] → [..., C]. An id outside [0, V) gives NaN rows and no
 * gradient.
 *
 * @example
 * ```ts
 * const h = embedding(wte, tokens); // [B, T, C]
 * ```
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  table.expectDtype("embedding", "f32");
  ids.expectDtype("embedding", "i32");
  if (table.rank !== 2) {
    throw new RangeError(`embedding: table must be [V, C], got ${table.describe()}`);
  }
  const [V, C] = table.shape;
  ids.checkIds("embedding", V);
  const N = ids.size;
  const tb = materialize(table);
  const is = materialize(ids);
  const out = empty([...ids.shape, C], "f32", "embedding");
  const p = params([N, C, V, 0]);
  const rt = runtime();
  if (out.size > 0) {
    launch1d(rt, embeddingKernel, "lookup", [tb.binding, is.binding, out.binding, p], out.size);
  }
  return record(out, "embedding", [table], (g) => {
    const gs = materialize(g);
    const dtable = zeros([V, C]);
    if (N > 0 && C > 0) {
      const perm = empty([N], "u32", "perm");
      launch1d(rt, embeddingKernel, "rank", [is.binding, perm.binding, p], N);
      launch1d(rt, embeddingKernel, "scatter", [
        gs.binding,
        is.binding,
        perm.binding,
        dtable.binding,
        p,
      ], N * C);
    }
    return [dtable];
  });
}
