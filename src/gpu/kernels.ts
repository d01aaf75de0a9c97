/**
 * The GPU layer's own kernels (imported as text so `deno compile` embeds them).
 *
 * @module
 */
import copySource from "../../kernels/copy.wgsl" with { type: "text" };
import type { Kernel } from "./pipelines.ts";

/** vec4 copy: the bandwidth yardstick for memory-bound kernels. */
export const copyKernel: Kernel = { name: "copy", code: copySource };
