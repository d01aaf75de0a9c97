/**
 * jackpot — the public entry that notebooks, scripts and tests import.
 *
 * Layers, each importing only those below it: `gpu` (device, pipelines, batching, timing) →
 * `obrs/reference` (float64 oracle, no GPU) and the GPU kernels → `sim` (the paper's Figure 2) and
 * `report` (tables, charts, HTML) → the CLI.
 *
 * @example
 * ```ts
 * import { exactZ, klDivergence, obrsDistribution, Rng } from "./mod.ts";
 * const rng = new Rng(0);
 * const p = rng.dirichlet(new Float64Array(50).fill(0.5));
 * const q = rng.dirichlet(new Float64Array(50).fill(0.5));
 * console.log(exactZ(p, q, 1), klDivergence(p, obrsDistribution(p, q, 1)) <= klDivergence(p, q));
 * ```
 *
 * @module
 */
export * from "./src/util/rng.ts";
export * from "./src/gpu/mod.ts";
export * from "./src/obrs/reference/mod.ts";
export * from "./src/sim/mod.ts";
export * from "./src/report/mod.ts";
export * from "./src/tasks/mod.ts";
export * from "./src/nn/checkpoint/mod.ts";
export * from "./src/obrs/gpu/mod.ts";
export * from "./src/tensor/mod.ts";
export * from "./src/tensor/matmul/mod.ts";
export * from "./src/autograd/mod.ts";
