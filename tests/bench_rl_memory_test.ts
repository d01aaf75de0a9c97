// The memory extrapolation of bench/memory/rl_memory.ts: the fit recovers any model from the six
// runs it needs, refuses missing runs, and its prediction is the model's formula.
import assert from "node:assert/strict";
import {
  fitMemoryModel,
  type MemoryModel,
  type MemoryRun,
  predictPeakMiB,
} from "../bench/memory/rl_memory.ts";
import { Rng } from "../src/util/rng.ts";

function runsOf(m: MemoryModel, rowsList: number[], minibatch: number): MemoryRun[] {
  const runs: MemoryRun[] = [];
  for (const [lp, la] of [[1, 1], [2, 1], [1, 2]]) {
    for (const rows of rowsList) {
      runs.push({
        policyLayers: lp,
        actorLayers: la,
        minibatch,
        maxNew: rows / minibatch,
        peakMiB: predictPeakMiB(m, lp, la, rows),
        heldMiB: 0,
        seconds: 0,
      });
    }
  }
  return runs;
}

Deno.test("rl memory bench: the fit recovers random models, the prediction is linear in blocks", () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 50; trial++) {
    const m: MemoryModel = {
      alpha0: 1000 * rng.uniform(),
      alpha1: 10 * rng.uniform(),
      beta0: 500 * rng.uniform(),
      beta1: rng.uniform(),
      gamma0: 200 * rng.uniform(),
      gamma1: rng.uniform(),
    };
    const mb = 2 * (1 + rng.int(4));
    const r1 = mb * (1 + rng.int(20)), r2 = r1 + mb * (1 + rng.int(20));
    const fit = fitMemoryModel(
      rng.uniform() < 0.5 ? runsOf(m, [r1, r2], mb) : runsOf(m, [r2, r1], mb),
    );
    for (const k of Object.keys(m) as (keyof MemoryModel)[]) {
      assert.ok(
        Math.abs(fit[k] - m[k]) <= 1e-9 * (1 + Math.abs(m[k])),
        `${k}: ${fit[k]} vs ${m[k]}`,
      );
    }
    // Independent evaluation of the formula at 28 + 28 blocks.
    const rows = 4096;
    const want = m.alpha0 + m.alpha1 * rows + 27 * (m.beta0 + m.beta1 * rows) +
      27 * (m.gamma0 + m.gamma1 * rows);
    assert.ok(Math.abs(predictPeakMiB(fit, 28, 28, rows) - want) <= 1e-6 * want);
  }
  const m = { alpha0: 1, alpha1: 1, beta0: 1, beta1: 1, gamma0: 1, gamma1: 1 };
  assert.throws(() => fitMemoryModel(runsOf(m, [8], 2)), /two row counts/);
  assert.throws(
    () => fitMemoryModel(runsOf(m, [8, 16], 2).filter((r) => r.actorLayers === 1)),
    /needs a run with 1\+2 blocks/,
  );
});
