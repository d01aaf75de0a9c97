/**
 * The float64 reference for {@link encodeMatmul}: the same arguments, computed in plain TypeScript
 * over arrays. Tests compare every kernel variant against it.
 *
 * @module
 */

/** The shape and layout arguments shared by the GPU matmul and its reference. */
export interface MatmulShape {
  /** Rows of C and of op(A). */
  M: number;
  /** Columns of C and of op(B). */
  N: number;
  /** The contracted dimension. */
  K: number;
  /** Number of independent products; default 1. */
  batchCount?: number;
  /** Elements between consecutive batch items of A; default M·K. */
  strideA?: number;
  /** Elements between consecutive batch items of B; default K·N (0 shares one B). */
  strideB?: number;
  /** Elements between consecutive batch items of C; default M·N. */
  strideC?: number;
  /** A is stored K×M (so op(A) = Aᵀ). */
  transA?: boolean;
  /** B is stored N×K (so op(B) = Bᵀ). */
  transB?: boolean;
  /** C += A·B instead of C = A·B. */
  accumulate?: boolean;
}

/**
 * C (+)= op(A)·op(B) in float64, for each batch item, in place on `c` (row-major throughout).
 *
 * @example
 * ```ts
 * const c = new Float64Array(4);
 * matmulReference([1, 2, 3, 4], [1, 0, 0, 1], c, { M: 2, N: 2, K: 2 }); // c = [1, 2, 3, 4]
 * ```
 */
export function matmulReference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: { length: number; [i: number]: number },
  s: MatmulShape,
): void {
  const { M, N, K } = s;
  const batchCount = s.batchCount ?? 1;
  const strideA = s.strideA ?? M * K;
  const strideB = s.strideB ?? K * N;
  const strideC = s.strideC ?? M * N;
  // Each element sums its K terms in order k = 0, 1, ... into a float64 that starts at 0; the loop
  // order only decides which operand is walked contiguously (the row of B, or of Bᵀ), which makes
  // a 4096-wide check ~10× faster than walking B down its columns.
  const row = new Float64Array(N);
  for (let bi = 0; bi < batchCount; bi++) {
    const a0 = bi * strideA, b0 = bi * strideB, c0 = bi * strideC;
    for (let m = 0; m < M; m++) {
      if (s.transB) {
        for (let n = 0; n < N; n++) {
          let sum = 0;
          const bn = b0 + n * K;
          for (let k = 0; k < K; k++) sum += a[a0 + (s.transA ? k * M + m : m * K + k)] * b[bn + k];
          row[n] = sum;
        }
      } else {
        row.fill(0);
        for (let k = 0; k < K; k++) {
          const av = a[a0 + (s.transA ? k * M + m : m * K + k)];
          const bk = b0 + k * N;
          for (let n = 0; n < N; n++) row[n] += av * b[bk + n];
        }
      }
      for (let n = 0; n < N; n++) {
        const i = c0 + m * N + n;
        c[i] = s.accumulate ? c[i] + row[n] : row[n];
      }
    }
  }
}
