/**
 * Embedding lookup with a deterministic scatter-add backward (see kernels/ops_embedding.wgsl: a
 * rank-by-(id, position) permutation then one summing thread per run of equal ids and column; no
 * atomics, so the gradient is bit-identical across runs).
 *
 * A table larger than one storage binding (a 151,936-token vocabulary: 545–622 MB) is bound in
 * blocks of rows (`rowBlocks`), one lookup and one scatter dispatch per block, each handling the
 * ids that fall in its rows; its gradient then goes straight into the table's `.grad` where the
 * tape allows it (`gradSink`), since adding a separate [V, C] gradient would bind it whole.
 *
 * @module
 */
import embeddingSource from "../../kernels/ops_embedding.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import {
  empty,
  fitsOneBinding,
  launch1d,
  materialize,
  params,
  type RowBlock,
  rowBlocks,
  runtime,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";
import { gradSink, record } from "./tape.ts";

const embeddingKernel: Kernel = { name: "ops_embedding", code: embeddingSource };

// The blocks of `t` [V, C] a dispatch binds: one (all of it) when it fits one binding.
function blocksOf(t: Tensor, V: number, C: number): RowBlock[] {
  if (fitsOneBinding(t)) return [{ row0: 0, rows: V, binding: t.binding }];
  return rowBlocks(t, C, `embedding: ${t.describe()}`);
}

/**
 * Rows of `table` [V, C] at i32 `ids` [...] → [..., C]. An id outside [0, V) gives NaN rows and no
 * gradient. Works for a table of any size (over one storage binding it is read block by block).
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
  // [n, c, v, row0, rows, flagBad]: the ids of rows row0.. (bad ids written by the first block)
  const p = (b: { row0: number; rows: number }) =>
    params([N, C, V, b.row0, b.rows, b.row0 === 0 ? 1 : 0, 0, 0]);
  const rt = runtime();
  if (out.size > 0) {
    for (const b of blocksOf(tb, V, C)) {
      launch1d(rt, embeddingKernel, "lookup", [b.binding, is.binding, out.binding, p(b)], out.size);
    }
  }
  return record(out, "embedding", [table], (g) => {
    const gs = materialize(g);
    const whole = fitsOneBinding(tb);
    // Over one binding, the gradient is added into the table's .grad block by block when the tape
    // allows it: a separate [V, C] gradient could not be added to it (that binds both whole).
    const sink = whole ? null : gradSink(table);
    const dtable = sink ? sink.grad : zeros([V, C]);
    if (N > 0 && C > 0) {
      const perm = empty([N], "u32", "perm");
      launch1d(rt, embeddingKernel, "rank", [is.binding, perm.binding, p({ row0: 0, rows: V })], N);
      for (const b of blocksOf(dtable, V, C)) {
        const bindings = [gs.binding, is.binding, perm.binding, b.binding, p(b)];
        const constants = sink ? { ACCUMULATE: 1 } : undefined;
        launch1d(rt, embeddingKernel, "scatter", bindings, N * C, constants);
      }
    }
    return [sink ? null : dtable];
  });
}
