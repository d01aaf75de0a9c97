/**
 * What loading a Hub-style checkpoint folder into a GPU model costs: wall time and the process's
 * peak resident memory (on a CPU adapter the GPU's buffers are host memory too, so the floor is
 * the model's f32 size), with the buffer pool's figures beside them.
 *
 * ```sh
 * deno run -A bench/bigvocab/hub_folder.ts --out /tmp/qwen-like   # a 0.6B stand-in, BF16, 3 shards
 * deno run -A bench/bigvocab/load.ts --checkpoint /tmp/qwen-like
 * deno run -A bench/bigvocab/load.ts --checkpoint /tmp/qwen-like --eager   # the whole-file reader
 * ```
 *
 * @module
 */
import { loadCheckpoint } from "../../src/nn/checkpoint/mod.ts";
import { loadTransformer, Transformer } from "../../src/nn/mod.ts";
import { initTensors, runtime } from "../../src/tensor/mod.ts";
import { benchArgs, benchUsageError } from "../args.ts";
import { peakRssMiB } from "./qwen_shape.ts";

const SCRIPT = "bench/bigvocab/load.ts";

const args = benchArgs(SCRIPT, "load a checkpoint folder into a GPU model: time and peak memory", {
  checkpoint: { type: "string", help: "the checkpoint folder (config.json and safetensors)" },
  eager: {
    type: "boolean",
    help: "read every tensor to the host first (loadCheckpoint + fromTensors)",
  },
});
const dir = args.checkpoint;
if (typeof dir !== "string") benchUsageError(SCRIPT, "--checkpoint DIR is required");

await initTensors();
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const rss0 = peakRssMiB();
const t0 = performance.now();
let model: Transformer;
if (args.eager) {
  const ckpt = await loadCheckpoint(dir);
  model = Transformer.fromTensors(ckpt.config, ckpt.tensors);
} else {
  model = (await loadTransformer(dir)).model;
}
// Wait for the uploads themselves, not only for their staging.
await runtime().gpu.device.queue.onSubmittedWorkDone();
const seconds = (performance.now() - t0) / 1000;
const pool = runtime().pool.stats();
const params = model.parameters().reduce((s, p) => s + p.size, 0);
console.log(
  `${args.eager ? "eager (loadCheckpoint + fromTensors)" : "streamed (loadTransformer)"}: ` +
    `${(params / 1e6).toFixed(1)}M parameters (${mib(params * 4)} MiB f32) in ${
      seconds.toFixed(1)
    } s; peak RSS ${mib(peakRssMiB() * 2 ** 20)} MiB (${mib(rss0 * 2 ** 20)} before); ` +
    `pool live ${mib(pool.liveBytes)} MiB, free ${mib(pool.freeBytes)} MiB`,
);
model.dispose();
