/**
 * `jackpot info`: what this machine offers jackpot — the WebGPU adapter, its optional features and
 * limits, and the runtime versions. The first thing to paste into a bug report.
 *
 * @module
 */
import type { Command } from "../command.ts";
import { createGpu, type GpuContext } from "../../gpu/device.ts";
import { runtimeVersions } from "../runtime.ts";

// The limits that decide what fits: binding and buffer sizes, workgroup shape and memory.
const KEY_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "minStorageBufferOffsetAlignment",
  "minUniformBufferOffsetAlignment",
];

/** The facts `jackpot info` reports, as a plain object (also its `--json` output). */
export function describeGpu(gpu: GpuContext): Record<string, unknown> {
  return {
    adapter: gpu.adapter,
    fallbackAdapter: gpu.isFallback,
    features: gpu.features,
    timestampQuery: gpu.hasTimestamps,
    shaderF16: gpu.hasF16,
    limits: gpu.limits,
    runtime: runtimeVersions(),
  };
}

/** `jackpot info`. */
export const command: Command = {
  name: "info",
  summary: "Show the WebGPU adapter, its features and limits, and the runtime versions",
  description:
    "Prints the WebGPU adapter jackpot will use (and whether it is a CPU fallback such as llvmpipe),\n" +
    "the optional features it enabled (shader-f16, timestamp-query), the device limits, and the\n" +
    "Deno/V8/TypeScript versions. Exits with 1 and one sentence when no WebGPU adapter exists.",
  options: {
    json: { type: "boolean", description: "Print everything as JSON, all limits included" },
  },
  async run(values) {
    const gpu = await createGpu();
    try {
      const facts = describeGpu(gpu);
      if (values.json) {
        console.log(JSON.stringify(facts, null, 2));
        return 0;
      }
      const a = gpu.adapter;
      const rt = runtimeVersions();
      const lines = [
        `adapter      ${a.description || a.device || "(unnamed)"}` +
        (a.vendor ? `  [vendor ${a.vendor}${a.architecture ? `, ${a.architecture}` : ""}]` : ""),
        `fallback     ${
          gpu.isFallback ? "yes (software adapter: correct but slow, ~1 GFLOP/s)" : "no (hardware)"
        }`,
        `features     ${gpu.features.join(", ") || "(none)"}`,
        `timestamps   ${gpu.hasTimestamps ? "yes" : "no (benchmarks fall back to wall clock)"}`,
        `shader-f16   ${gpu.hasF16 ? "yes" : "no"}`,
        "limits",
        ...KEY_LIMITS.filter((k) => k in gpu.limits).map((k) =>
          `  ${k.padEnd(36)}${gpu.limits[k].toLocaleString("en-US")}`
        ),
        `runtime      ${Object.entries(rt).map(([k, v]) => `${k} ${v}`).join(", ")}`,
      ];
      console.log(lines.join("\n"));
      return 0;
    } finally {
      gpu.device.destroy();
    }
  },
};
