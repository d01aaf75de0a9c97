/**
 * The paper's Figure 2 simulation: Dirichlet targets, noisy proposals calibrated to a KL level,
 * and what OBRS (float64 reference) accepts and corrects. Pure float64 TypeScript, no GPU.
 *
 * @module
 */
export * from "./noise.ts";
export * from "./stats.ts";
export * from "./figure2.ts";
export * from "./figure2_charts.ts";
