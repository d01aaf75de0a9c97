/**
 * Row tiling of `[rows, cols]` f32 matrices so that no binding exceeds the device's
 * maxStorageBufferBindingSize (128 MiB on llvmpipe; a 4096 × 151,936 f32 matrix is 2.5 GB) and
 * every tile starts at an offset the device accepts.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";

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
