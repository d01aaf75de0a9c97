/**
 * Sweeps: plans of `jackpot rl` runs over axes and seeds, the built-in presets (SPEC §9 at small
 * scale), statistics across seeds (Student-t intervals, Welch and paired t tests, Holm) and
 * SLURM array scripts.
 * Pure TypeScript: running a sweep is the CLI's (`src/cli/commands/sweep*.ts`).
 *
 * @module
 */
export * from "./plan.ts";
export * from "./presets.ts";
export * from "./stats.ts";
export * from "./aggregate.ts";
export * from "./scheduler.ts";
