/**
 * A helper of the evaluation tests: a `tiny` model trained part of the way on fixed examples, so
 * that it answers some prompts always, some never and some sometimes.
 *
 * @module
 */
import { AdamW } from "../src/autograd/mod.ts";
import {
  buildSupervisedBatch,
  type Example,
  maxSequenceLength,
  type Task,
} from "../src/tasks/mod.ts";
import { initTensors, tensor, tidy } from "../src/tensor/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";

/**
 * A fresh `tiny` model (weights from `seed`) after `steps` full-batch AdamW steps (lr 2e-2) of
 * next-token cross-entropy on the answers of `examples`. The caller disposes it.
 */
export async function trainTinyOn(
  task: Task,
  examples: readonly Example[],
  steps: number,
  seed = 2,
): Promise<Transformer> {
  await initTensors();
  const T = maxSequenceLength(task);
  const batch = buildSupervisedBatch(task, [...examples], T);
  const targets = Int32Array.from(batch.targets, (y, i) => (batch.targetMask[i] > 0 ? y : -1));
  const model = Transformer.init(modelConfig("tiny", task.tokenizer.vocabSize), { seed });
  const opt = new AdamW(model.parameters(), { lr: 2e-2, weightDecay: 0 });
  for (let step = 0; step < steps; step++) {
    tidy(() => {
      const l = model.loss(tensor(batch.tokens, [batch.B, T]), tensor(targets, [batch.B, T]));
      l.backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  opt.dispose();
  return model;
}
