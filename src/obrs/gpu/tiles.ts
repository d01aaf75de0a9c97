/**
 * Row tiling of `[rows, cols]` f32 matrices so that no binding exceeds the device's
 * maxStorageBufferBindingSize (128 MiB on llvmpipe; a 4096 × 151,936 f32 matrix is 2.5 GB) and
 * every tile starts at an offset the device accepts.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";
import type { LogitsSource } from "./inputs.ts";

/** One tile: rows [row0, row0 + rows) bound as bytes [offset, offset + size). */
export interface RowTile {
  /** First row of the tile. */
  row0: number;
  /** Rows in the tile. */
  rows: number;
  /** Byte offset into the matrix buffer. */
  offset: number;
  /** Byte size of the binding. */
  size: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The binding limit to tile by: the device's, or a smaller one (tests use it to force tiles). */
export function bindingLimit(gpu: GpuContext, override?: number): number {
  const device = gpu.limits.maxStorageBufferBindingSize ?? 134217728;
  return Math.min(device, override ?? Infinity);
}

/**
 * Splits `rows` rows of `cols` f32 into tiles of at most `maxBytes` bytes whose byte offsets are
 * multiples of minStorageBufferOffsetAlignment.
 *
 * @example
 * ```ts
 * for (const t of rowTiles(gpu, 4096, 151936)) console.log(t.row0, t.rows);
 * ```
 */
export function rowTiles(
  gpu: GpuContext,
  rows: number,
  cols: number,
  maxBytes?: number,
): RowTile[] {
  const rowBytes = cols * 4;
  const limit = bindingLimit(gpu, maxBytes);
  const align = gpu.limits.minStorageBufferOffsetAlignment ?? 256;
  const maxRows = Math.floor(limit / rowBytes);
  const step = align / gcd(rowBytes, align); // rows per aligned offset
  const tileRows = rows <= maxRows ? rows : Math.floor(maxRows / step) * step;
  if (tileRows < 1) {
    throw new RangeError(
      `a row of ${cols} f32 (${rowBytes} bytes, tiles aligned to ${step} rows) does not fit the ` +
        `binding limit of ${limit} bytes`,
    );
  }
  const tiles: RowTile[] = [];
  for (let row0 = 0; row0 < rows; row0 += tileRows) {
    const n = Math.min(tileRows, rows - row0);
    tiles.push({ row0, rows: n, offset: row0 * rowBytes, size: n * rowBytes });
  }
  return tiles;
}

/** A byte range of one buffer, as a binding takes it. */
export interface TileBinding {
  /** The buffer (a whole matrix, or the row block holding the tile). */
  buffer: GPUBuffer;
  /** Byte offset into `buffer`. */
  offset: number;
  /** Byte size of the binding. */
  size: number;
}

/** One tile of a logits source: global rows [row0, row0 + rows), bound in its block's buffer. */
export interface BoundTile extends RowTile, TileBinding {}

/** The blocks of a source, one buffer counting as a single block of all rows. */
function blocksOf(src: LogitsSource, rows: number): readonly { buffer: GPUBuffer; rows: number }[] {
  return src instanceof GPUBuffer ? [{ buffer: src, rows }] : src;
}

/**
 * Tiles a logits source (one buffer, or row blocks) with {@link rowTiles} inside each block:
 * `row0` is the global row (what the kernels index their per-row outputs by), `offset` the byte
 * offset inside the block's buffer.
 *
 * @example
 * ```ts
 * for (const t of sourceTiles(gpu, [{ buffer: a, rows: 7 }, { buffer: b, rows: 13 }], 20, v)) {
 *   console.log(t.row0, t.rows, t.buffer === a);
 * }
 * ```
 */
export function sourceTiles(
  gpu: GpuContext,
  src: LogitsSource,
  rows: number,
  cols: number,
  maxBytes?: number,
): BoundTile[] {
  const tiles: BoundTile[] = [];
  let start = 0;
  for (const b of blocksOf(src, rows)) {
    for (const t of rowTiles(gpu, b.rows, cols, maxBytes)) {
      tiles.push({ ...t, row0: start + t.row0, buffer: b.buffer });
    }
    start += b.rows;
  }
  return tiles;
}

/** One tile of two sources read side by side: the same global rows in each. */
export interface PairedTile {
  /** First global row. */
  row0: number;
  /** Rows in the tile. */
  rows: number;
  /** The rows in the first source. */
  a: TileBinding;
  /** The rows in the second source. */
  b: TileBinding;
}

/**
 * Tiles two `[rows, cols]` sources row by row together (exact Z reads p_inf and p_target side by
 * side; log-softmax reads x and writes out). Where their blocks differ, tiles break at every
 * boundary of either; a tile that would then start at a byte offset the device cannot bind
 * throws `mismatch`.
 *
 * @example
 * ```ts
 * for (const t of pairedTiles(gpu, inf, tgt, n, v, "blocks differ")) bind(t.a, t.b, t.row0);
 * ```
 */
export function pairedTiles(
  gpu: GpuContext,
  a: LogitsSource,
  b: LogitsSource,
  rows: number,
  cols: number,
  mismatch: string,
  maxBytes?: number,
): PairedTile[] {
  const rowBytes = cols * 4;
  const align = gpu.limits.minStorageBufferOffsetAlignment ?? 256;
  const ba = blocksOf(a, rows), bb = blocksOf(b, rows);
  const tiles: PairedTile[] = [];
  let ia = 0, ib = 0, startA = 0, startB = 0, row = 0;
  while (row < rows) {
    // The segment [row, end) lies in block ia of a and block ib of b.
    const endA = startA + ba[ia].rows, endB = startB + bb[ib].rows;
    const end = Math.min(endA, endB);
    const offA = (row - startA) * rowBytes, offB = (row - startB) * rowBytes;
    if (offA % align !== 0 || offB % align !== 0) throw new RangeError(mismatch);
    for (const t of rowTiles(gpu, end - row, cols, maxBytes)) {
      tiles.push({
        row0: row + t.row0,
        rows: t.rows,
        a: { buffer: ba[ia].buffer, offset: offA + t.offset, size: t.size },
        b: { buffer: bb[ib].buffer, offset: offB + t.offset, size: t.size },
      });
    }
    row = end;
    if (end === endA) [ia, startA] = [ia + 1, endA];
    if (end === endB) [ib, startB] = [ib + 1, endB];
  }
  return tiles;
}
