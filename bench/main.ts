/**
 * `deno task bench`: the benchmark suites, timed with GPU timestamp queries (medians), each figure
 * next to the limit it is measured against. `--small` uses shapes a CPU fallback adapter finishes
 * in seconds; the default shapes are the issue targets for an H100.
 *
 * Usage: deno task bench [--suite copy,...] [--small] [--json FILE]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createGpu } from "../src/gpu/mod.ts";
import { benchCopy } from "./copy.ts";

const SUITES = ["copy"] as const;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    suite: { type: "string", default: SUITES.join(",") },
    small: { type: "boolean", default: false },
    json: { type: "string" },
  },
});
const suites = values.suite!.split(",").map((s) => s.trim());
for (const s of suites) {
  if (!(SUITES as readonly string[]).includes(s)) {
    console.error(`bench: unknown suite '${s}'; the suites are ${SUITES.join(", ")}`);
    Deno.exit(2);
  }
}

const gpu = await createGpu();
const report: Record<string, unknown> = {
  adapter: gpu.adapter.description,
  fallback: gpu.isFallback,
  timing: gpu.hasTimestamps ? "gpu-timestamps" : "wall-clock",
  small: values.small,
};
console.log(`adapter: ${gpu.adapter.description}${gpu.isFallback ? " (CPU fallback)" : ""}`);

if (suites.includes("copy")) {
  const copy = await benchCopy(gpu, { megabytes: values.small ? [4, 16] : [64, 256, 1024] });
  report.copy = copy;
  for (const r of copy) {
    console.log(
      `copy ${(r.bytes / 2 ** 20).toFixed(0).padStart(5)} MiB  ${r.medianMs.toFixed(3)} ms  ` +
        `${r.gbPerSecond.toFixed(1)} GB/s (read+write)`,
    );
  }
}

if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");
gpu.device.destroy();
