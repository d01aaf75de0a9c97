/**
 * jackpot — the public entry that notebooks, scripts and tests import.
 *
 * Layers, each importing only those below it: `gpu` (device, pipelines, batching, timing) →
 * `tensor` + `autograd` (tape, ops, AdamW) and `obrs/reference` (float64 oracle, no GPU) with its
 * GPU kernels `obrs/gpu` → `nn` (transformer, rollout engine, pretraining, checkpoints) and `tasks`
 * → `sim` (the paper's Figure 2), `rl` (losses, trainer), `sweep` (plans, statistics over seeds)
 * and `report` (tables, charts, HTML) → the CLI.
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
export * from "./src/obrs/gpu/mod.ts";
export * from "./src/tensor/mod.ts";
export * from "./src/tensor/matmul/mod.ts";
export * from "./src/autograd/mod.ts";
export * from "./src/nn/mod.ts";
export * from "./src/text/mod.ts";
export * from "./src/rl/mod.ts";
export * from "./src/sweep/mod.ts";
