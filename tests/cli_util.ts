/**
 * Helpers of the CLI tests: run a command in-process with console output captured, and make a
 * starting checkpoint.
 *
 * @module
 */
import { initTensors } from "../src/tensor/mod.ts";
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";

/** Runs `fn` with `console.log` and `console.error` captured; restores them afterwards. */
export async function quietly<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; out: string; err: string }> {
  const log = console.log, error = console.error;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { value: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/**
 * Saves a fresh `tiny` model of one-digit addition's vocabulary (18 ids) as a checkpoint folder
 * `dir` (weights drawn from `seed`) and returns `dir`: a starting model for CLI runs.
 */
export async function tinyCheckpoint(dir: string, seed: number): Promise<string> {
  await initTensors();
  const m = Transformer.init(modelConfig("tiny", 18), { seed, std: 0.2 });
  await saveCheckpoint(
    dir,
    await m.toCheckpoint({ task: "arithmetic:maxDigits=1,ops=+", step: 0 }),
  );
  m.dispose();
  return dir;
}
