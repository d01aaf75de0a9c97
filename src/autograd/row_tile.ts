/**
 * The register tile of kernels/ops_rows.wgsl, shared by the norm, softmax and cross-entropy row
 * kernels: how many vec4 each of a workgroup's 256 invocations holds of one row.
 *
 * @module
 */

/**
 * Vec4 per thread of the register tile of kernels/ops_rows.wgsl (its override `K`) for rows of
 * `n` floats: the fewest of 1, 2, 4 that hold the row (4 past 4096 floats, walked in tiles).
 */
export function rowTileK(n: number): number {
  const vec4s = Math.ceil(n / 4);
  return vec4s <= 256 ? 1 : vec4s <= 512 ? 2 : 4;
}
