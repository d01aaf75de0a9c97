/**
 * The three anchor sizes of the speed comparison with PyTorch (issue 5, item 7), defined once:
 * `bench/nn/` times them here and `bench/torch/train_step.py` / `generate.py` mirror these numbers
 * (keep them in sync; `tests/nn_config_test.ts` checks the parameter counts).
 *
 * Vocabulary 1,028 is the `wordsort` task's, so the anchors are models this project trains.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/** One anchor: a model and the training batch it is timed at. */
export interface Anchor {
  /** Short name used in bench output and by the Python scripts. */
  name: string;
  /** The model. */
  config: ModelConfig;
  /** Training batch rows. */
  B: number;
  /** Training sequence length. */
  T: number;
}

const COMMON = {
  vocabSize: 1028,
  maxSeqLen: 256,
  ropeTheta: 10000,
  normEps: 1e-6,
  tiedEmbeddings: true,
  qkNorm: true,
} as const;

/** ~0.8M, ~5M and ~29M parameters, with their (B, T). */
export const ANCHORS: readonly Anchor[] = [
  {
    name: "0.8M",
    config: {
      ...COMMON,
      hidden: 128,
      layers: 4,
      heads: 4,
      kvHeads: 2,
      headDim: 32,
      intermediate: 320,
    },
    B: 64,
    T: 64,
  },
  {
    name: "5M",
    config: {
      ...COMMON,
      hidden: 256,
      layers: 6,
      heads: 8,
      kvHeads: 4,
      headDim: 32,
      intermediate: 768,
    },
    B: 64,
    T: 128,
  },
  {
    name: "29M",
    config: {
      ...COMMON,
      hidden: 512,
      layers: 9,
      heads: 8,
      kvHeads: 4,
      headDim: 64,
      intermediate: 1536,
    },
    B: 32,
    T: 256,
  },
];

/** Sampling benchmark shape shared with `bench/torch/generate.py`: batch and new tokens. */
export const GENERATE_BENCH = { batch: 64, newTokens: 128, promptLength: 8 } as const;

/** The anchor named `name`; throws naming the known ones. */
export function anchor(name: string): Anchor {
  const a = ANCHORS.find((x) => x.name === name);
  if (!a) {
    throw new RangeError(
      `unknown anchor '${name}'; known: ${ANCHORS.map((x) => x.name).join(", ")}`,
    );
  }
  return a;
}
