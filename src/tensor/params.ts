/**
 * Packing kernel parameters into the Uint32Array uniform blocks that ComputeBatch binds: a head of
 * scalars (u32, or f32 through {@link f32}) padded to 16 bytes, then rank-8 arrays as `array<vec4u, 2>`.
 *
 * @module
 */
import { MAX_RANK } from "./shape.ts";

/** An f32 field of a uniform block. */
export interface F32 {
  /** The value. */
  f32: number;
}

/** Marks a number as an f32 field. */
export function f32(v: number): F32 {
  return { f32: v };
}

/** Packs `head` (padded to a multiple of 4 words) followed by each array padded to 8 words. */
export function params(
  head: ReadonlyArray<number | F32>,
  ...arrays: readonly number[][]
): Uint32Array {
  const headLen = Math.ceil(head.length / 4) * 4;
  const out = new Uint32Array(headLen + arrays.length * MAX_RANK);
  const asF32 = new Float32Array(out.buffer);
  head.forEach((v, i) => {
    if (typeof v === "number") out[i] = v >>> 0;
    else asF32[i] = v.f32;
  });
  arrays.forEach((a, j) => a.forEach((v, i) => (out[headLen + j * MAX_RANK + i] = v >>> 0)));
  return out;
}
