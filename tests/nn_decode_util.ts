/**
 * What the decode-step tests share: a small model config (two layers, QK-norm, tied head) and a
 * model with every parameter random, norm weights and biases too (init sets them to 1 and 0,
 * which would hide a swapped norm or a dropped bias).
 */
import type { ModelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { Rng } from "../src/util/rng.ts";

/** Two layers, 4/2 heads × 8, QK-norm, tied embeddings, vocabulary 13. */
export const DECODE_TEST_MODEL: ModelConfig = {
  vocabSize: 13,
  hidden: 16,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  intermediate: 24,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
};

/**
 * A model of `cfg` with every parameter drawn from `Rng(seed)` in checkpoint order: biases
 * N(0, 0.5²), vectors (norm weights) U(0.5, 1.5), matrices N(0, 0.4²).
 */
export function randomModel(cfg: ModelConfig, seed: number): Transformer {
  const rng = new Rng(seed);
  const host = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, shape] of Transformer.shapes(cfg)) {
    const n = shape.reduce((p, d) => p * d, 1);
    const data = name.endsWith(".bias")
      ? Float32Array.from({ length: n }, () => 0.5 * rng.normal())
      : shape.length === 1
      ? Float32Array.from({ length: n }, () => 0.5 + rng.uniform())
      : Float32Array.from({ length: n }, () => 0.4 * rng.normal());
    host.set(name, { shape, data });
  }
  return Transformer.fromTensors(cfg, host);
}
