/**
 * The GPU layer: device, pipeline cache, dispatch batching, buffers and timing. It knows nothing
 * of models or of OBRS.
 *
 * @module
 */
export * from "./device.ts";
export * from "./pipelines.ts";
export * from "./batch.ts";
export * from "./bind_groups.ts";
export * from "./errors.ts";
export * from "./buffers.ts";
export * from "./memory.ts";
export * from "./timing.ts";
export * from "./kernels.ts";
export * from "./profile.ts";
export * from "./dispatch_tally.ts";
