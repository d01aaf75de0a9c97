/**
 * `deno task bench`: every benchmark suite, each timed with GPU timestamp queries (medians) and
 * printed next to the limit it is measured against. Default shapes are the issue targets for an
 * H100; `--small` uses shapes a CPU fallback adapter finishes in seconds.
 *
 * Usage: deno task bench [--suite copy,dispatch,obrs,matmul,tensor,nn] [--small] [--out DIR] [--torch DIR]
 *
 * `--suite profile` (not in the default list) breaks the training step and a sampling batch of
 * each anchor down by kernel (bench/nn/profile.ts).
 *
 * Each suite also runs alone (`deno run -A bench/<suite>/main.ts --help`); this runner starts
 * each in its own process so that one suite's failure or memory does not affect the next, and
 * collects their JSON into `--out` (default runs/bench-<UTC time>/). With `--torch DIR` holding
 * the PyTorch scripts' JSON (bench/torch/*.py), suites that compare print the ratio too.
 *
 * @module
 */
import { join } from "node:path";
import { createGpu, type GpuContext } from "../src/gpu/mod.ts";
import { timestamp } from "../src/report/mod.ts";
import { benchArgs, benchUsageError } from "./args.ts";
import { benchCopy, type CopyResult } from "./copy.ts";
import { benchDispatch, type DispatchResult } from "./dispatch.ts";

/** A suite run in its own process: its script and how it is told where to write JSON. */
interface Suite {
  script: string;
  jsonArgs: (file: string) => string[];
  torchArgs?: (dir: string) => string[];
}

const SUITES: Record<string, Suite | "in-process"> = {
  copy: "in-process",
  dispatch: "in-process",
  obrs: { script: "bench/obrs/main.ts", jsonArgs: (f) => ["--out", f] },
  matmul: {
    script: "bench/matmul/main.ts",
    jsonArgs: (f) => [`--json=${f}`],
    torchArgs: (d) => [`--torch=${join(d, "matmul.json")}`],
  },
  tensor: { script: "bench/tensor/main.ts", jsonArgs: (f) => ["--json", f] },
  nn: {
    script: "bench/nn/main.ts",
    jsonArgs: (f) => ["--json", f],
    torchArgs: (d) => ["--torch", d],
  },
  profile: { script: "bench/nn/profile.ts", jsonArgs: (f) => ["--json", f] },
};
// Every suite but the profile, which is a diagnosis rather than a figure to compare.
const DEFAULT_SUITES = Object.keys(SUITES).filter((s) => s !== "profile");

const script = "deno task bench";
const values = benchArgs(
  script,
  "Every benchmark suite, timed with GPU timestamp queries, each next to the limit it is measured " +
    "against. Each suite also runs alone: deno run -A bench/<suite>/main.ts --help.",
  {
    suite: {
      type: "string",
      default: DEFAULT_SUITES.join(","),
      help: "comma-separated suites (profile: the per-kernel profile of bench/nn)",
    },
    small: { type: "boolean", help: "shapes a CPU fallback adapter finishes in seconds" },
    out: { type: "string", help: "folder for the suites' JSON (default runs/bench-<UTC time>/)" },
    torch: { type: "string", help: "folder of the PyTorch scripts' JSON, for ratios" },
  },
);
const suites = values.suite.split(",").map((s) => s.trim());
for (const s of suites) {
  if (!(s in SUITES)) {
    benchUsageError(
      script,
      `unknown suite '${s}'; the suites are ${Object.keys(SUITES).join(", ")}`,
    );
  }
}
const out = values.out ?? join("runs", `bench-${timestamp()}`);
await Deno.mkdir(out, { recursive: true });

async function runCopy(gpu: GpuContext): Promise<CopyResult[]> {
  const rows = await benchCopy(gpu, { megabytes: values.small ? [4, 16] : [64, 256, 1024] });
  for (const r of rows) {
    console.log(
      `copy ${(r.bytes / 2 ** 20).toFixed(0).padStart(5)} MiB  ${r.medianMs.toFixed(3)} ms  ` +
        `${r.gbPerSecond.toFixed(1)} GB/s (read+write)`,
    );
  }
  return rows;
}

async function runDispatch(gpu: GpuContext): Promise<DispatchResult> {
  const r = await benchDispatch(gpu);
  console.log(
    `host cost per dispatch (encode + submit, ${r.dispatches} per batch): ` +
      `${r.freshUs.toFixed(2)} µs with new bind groups, ${r.cachedUs.toFixed(2)} µs cached`,
  );
  return r;
}

let failed = 0;
for (const name of suites) {
  const suite = SUITES[name];
  console.log(`\n== ${name} ==`);
  if (suite === "in-process") {
    const gpu = await createGpu();
    console.log(`adapter: ${gpu.adapter.description}${gpu.isFallback ? " (CPU fallback)" : ""}`);
    const result = name === "copy" ? await runCopy(gpu) : await runDispatch(gpu);
    await Deno.writeTextFile(join(out, `${name}.json`), JSON.stringify(result, null, 2) + "\n");
    gpu.device.destroy();
    continue;
  }
  const args = ["run", "--allow-all", suite.script, ...suite.jsonArgs(join(out, `${name}.json`))];
  if (values.small) args.push("--small");
  if (values.torch && suite.torchArgs) args.push(...suite.torchArgs(values.torch));
  const status = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn().status;
  if (!status.success) {
    console.error(`bench: suite ${name} failed with exit code ${status.code}`);
    failed++;
  }
}
console.log(`\nresults: ${out}`);
Deno.exit(failed ? 1 : 0);
