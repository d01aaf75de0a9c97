/**
 * Tensors larger than one storage binding: splitting a contiguous tensor into blocks of whole rows
 * that each fit one binding (`TensorRuntime.storageBindingLimit`) and start where a binding may
 * (a multiple of `minStorageBufferOffsetAlignment`). The embedding table and the classifier of a
 * 151,936-token vocabulary (545–622 MB) are bound this way, block by block, one dispatch each.
 *
 * @module
 */
import type { BufferSlice } from "../gpu/mod.ts";
import type { TensorRuntime } from "./runtime.ts";
import type { Tensor } from "./tensor.ts";

/** One block of rows of a tensor: rows `row0 .. row0 + rows - 1`, and the binding over them. */
export interface RowBlock {
  /** First row of the block. */
  row0: number;
  /** Rows in the block (the last block may have fewer). */
  rows: number;
  /**
   * The block's elements, bound where the block starts (size rounded up to 16 bytes); a tensor's
   * own {@link Tensor.binding} when one block holds all of it.
   */
  binding: GPUBuffer | BufferSlice;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Rows a block may hold when rows are `rowElems` elements apart: as many as fit `limitBytes`, a
 * multiple of the rows between two bindable offsets (so every block starts aligned). Throws a
 * RangeError naming `what` when not even that many rows fit.
 *
 * @example
 * ```ts
 * blockRows(1024, 2 ** 27, 256, "wte"); // 32768 rows of 4 KiB per 128 MiB binding
 * ```
 */
export function blockRows(
  rowElems: number,
  limitBytes: number,
  alignBytes: number,
  what: string,
): number {
  const alignElems = Math.max(1, alignBytes / 4);
  const step = alignElems / gcd(Math.max(1, rowElems), alignElems);
  const fit = Math.floor(limitBytes / 4 / Math.max(1, rowElems));
  const rows = Math.floor(fit / step) * step;
  if (rows < 1) {
    throw new RangeError(
      `${what}: ${step} rows of ${rowElems} elements (the fewest between two bindable offsets) ` +
        `span more than one storage binding (${limitBytes} bytes)`,
    );
  }
  return rows;
}

/** True when all of contiguous `t` fits one storage binding (the usual case: one dispatch). */
export function fitsOneBinding(t: Tensor): boolean {
  return Math.ceil((t.size * 4) / 16) * 16 <= t.storage.rt.storageBindingLimit;
}

/**
 * Contiguous `t` ([rows, ...] read as rows of `rowElems` elements) as blocks of whole rows, each
 * within one storage binding of `rt` and starting at a bindable offset; one block when it fits.
 *
 * @example
 * ```ts
 * for (const b of rowBlocks(table, C)) dispatchOver(b.binding, b.row0, b.rows);
 * ```
 */
export function rowBlocks(t: Tensor, rowElems: number, what = t.describe()): RowBlock[] {
  const rt: TensorRuntime = t.storage.rt;
  if (!t.isContiguous) throw new Error(`${what} must be contiguous to be bound in blocks`);
  const total = rowElems > 0 ? t.size / rowElems : 0;
  if (!Number.isInteger(total)) {
    throw new RangeError(`${what}: ${t.size} elements are not rows of ${rowElems}`);
  }
  const per = blockRows(rowElems, rt.storageBindingLimit, rt.storageOffsetAlignment, what);
  const buffer = t.storageBuffer;
  const out: RowBlock[] = [];
  for (let row0 = 0; row0 < total; row0 += per) {
    const rows = Math.min(per, total - row0);
    const offset = (t.offset + row0 * rowElems) * 4;
    const size = Math.min(buffer.size - offset, Math.ceil((rows * rowElems * 4) / 16) * 16);
    out.push({ row0, rows, binding: { buffer, offset, size } });
  }
  return out;
}
