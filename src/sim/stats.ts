/**
 * Summary statistics over trials: the shared ones in `src/util/stats.ts`.
 *
 * @module
 */
export * from "../util/stats.ts";
