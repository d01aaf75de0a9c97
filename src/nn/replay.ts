/**
 * The trainer's replay of the behaviour policy's processing (SPEC §10): log-probs of given tokens
 * under the same temperature, top-k and top-p as the rollout engine samples with (the thresholds
 * come from the same WGSL, kernels/sample_common.wgsl), as an autograd op. Replaying the raw model
 * instead of the processed distribution would silently rescale every importance ratio.
 *
 * @module
 */
import commonSource from "../../kernels/sample_common.wgsl" with { type: "text" };
import replaySource from "../../kernels/sample_replay.wgsl" with { type: "text" };
import { record } from "../autograd/mod.ts";
import { grid, type Kernel } from "../gpu/mod.ts";
import {
  empty,
  f32,
  fitsOneBinding,
  launch1d,
  materialize,
  params,
  rowBlocks,
  runtime,
  type Tensor,
} from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { type SamplingSettings, validateSampling } from "./sampling_reference.ts";

const replayKernel: Kernel = { name: "sample_replay", code: commonSource + replaySource };

/**
 * `out[...] = log p_processed(tokens[...])` for `logits` [..., V] and i32 `tokens` [...]: -inf for
 * a token the truncation removed, NaN for an id outside [0, V). The gradient flows into `logits`
 * with the kept set held fixed (the truncation itself has no gradient); greedy settings
 * (temperature 0) give 0 or -inf and no gradient.
 *
 * @example
 * ```ts
 * const lpNew = sampledLogProbs(model.forward(tokens), nextTokens, rollout.settings); // [B, T]
 * ```
 */
export function sampledLogProbs(
  logits: Tensor,
  tokens: Tensor,
  settings: SamplingSettings,
): Tensor {
  logits.expectDtype("sampledLogProbs", "f32");
  tokens.expectDtype("sampledLogProbs", "i32");
  if (logits.rank < 1 || !sameShape(logits.shape.slice(0, -1), tokens.shape)) {
    throw new RangeError(
      `sampledLogProbs: logits ${fmtShape(logits.shape)} need tokens of shape ${
        fmtShape(logits.shape.slice(0, -1))
      }, ` +
        `got ${fmtShape(tokens.shape)}`,
    );
  }
  const V = logits.shape[logits.rank - 1];
  const s = validateSampling(settings, V);
  const rows = tokens.size;
  const x = materialize(logits);
  const t = materialize(tokens);
  const out = empty(tokens.shape, "f32", "sampledLogProbs");
  // Per row: threshold key (or argmax id), kept log-sum-exp, row max (sample_replay.wgsl).
  const saved = empty([Math.max(1, rows), 3], "u32", "sampledLogProbs saved");
  // [block rows, first row]: all rows at once, or one dispatch per block of rows of logits over
  // one storage binding (a 151,936-token vocabulary: ~220 rows per 128 MiB), dx in the same blocks
  const head = (n: number, row0: number) =>
    params([n, V, s.topK, row0, f32(s.temperature), f32(s.topP), 0, 0]);
  const blocksOf = (ts: Tensor[]) => {
    if (ts.every(fitsOneBinding)) return [{ row0: 0, rows, bindings: ts.map((u) => u.binding) }];
    const bs = ts.map((u) => rowBlocks(u, V, `sampledLogProbs: ${u.describe()}`));
    return bs[0].map((b, i) => ({ ...b, bindings: bs.map((l) => l[i].binding) }));
  };
  const rt = runtime();
  if (rows > 0) {
    for (const b of blocksOf([x])) {
      rt.dispatch({
        kernel: replayKernel,
        entryPoint: "fwd",
        constants: { WG: 256 },
        bindings: [b.bindings[0], t.binding, out.binding, saved.binding, head(b.rows, b.row0)],
        workgroups: grid(b.rows),
      });
    }
  }
  return record(out, "sampledLogProbs", [logits], (g) => {
    const dx = empty(logits.shape, "f32", "grad");
    const gs = materialize(g);
    if (dx.size > 0) {
      for (const b of blocksOf([x, dx])) {
        launch1d(
          rt,
          replayKernel,
          "bwd",
          [
            b.bindings[0],
            t.binding,
            saved.binding,
            gs.binding,
            b.bindings[1],
            head(b.rows, b.row0),
          ],
          b.rows * V,
          { WG: 256 },
        );
      }
    }
    return [dx];
  });
}
