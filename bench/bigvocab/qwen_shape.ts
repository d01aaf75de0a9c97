/**
 * What the large-vocabulary benches share: the model config with Qwen3-0.6B's shapes (vocabulary
 * 151,936, hidden 1024, 16 heads, 8 KV heads, head_dim 128, intermediate 3072, tied embeddings,
 * QK-norm) at any number of layers, and the process's peak resident memory.
 *
 * @module
 */
import { type ModelConfig, modelConfig } from "../../src/nn/config.ts";

/** Qwen3-0.6B's vocabulary. */
export const QWEN3_VOCAB = 151_936;

/**
 * A jackpot model config with Qwen3-0.6B's shapes, `layers` blocks and `maxSeqLen` positions.
 *
 * @example
 * ```ts
 * const model = Transformer.init(qwen3ShapedConfig(2, 128), { seed: 1 });
 * ```
 */
export function qwen3ShapedConfig(layers: number, maxSeqLen: number): ModelConfig {
  return modelConfig("tiny", QWEN3_VOCAB, {
    hidden: 1024,
    layers,
    heads: 16,
    kvHeads: 8,
    headDim: 128,
    intermediate: 3072,
    maxSeqLen,
    tiedEmbeddings: true,
    qkNorm: true,
    ropeTheta: 1_000_000,
    normEps: 1e-6,
  });
}

/** Peak resident memory of this process in MiB (Linux's VmHWM; current RSS elsewhere). */
export function peakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: no /proc
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}
