/**
 * The matmuls of one decode step of the rollout engine (`--decode`): for each anchor of
 * src/nn/anchors.ts, the distinct products of `decodeStep` (src/nn/kv_cache.ts) at the sampling
 * benchmark's batch (M = 64 rows, one token each). Every one multiplies the activations [M, in] by
 * the transpose of a weight stored [out, in] (Hugging Face layout, read as `w.transpose()`): NT.
 * Attention itself is one fused kernel, not a matmul.
 *
 * @module
 */
import { type Anchor, ANCHORS, GENERATE_BENCH } from "../../src/nn/anchors.ts";
import type { SkinnyTiling } from "../../src/tensor/matmul/skinny.ts";
import type { MatmulBenchRow, MatmulBenchShape } from "./main.ts";

/** One decode-step product and how often a step runs it. */
export interface DecodeShape extends MatmulBenchShape {
  /** Anchor name ("0.8M", "5M", "29M"). */
  anchor: string;
  /** Which projections it is ("q/o", "k/v", "gate/up", "down", "head"). */
  role: string;
  /** Products of this shape per decode step (layers × projections of this shape). */
  perStep: number;
  /**
   * The tiling v14 ran (`chooseSkinnyTiling` on the adapter's grid limit), set by main.ts's
   * `--decode` run before timing the shape; absent from {@link decodeShapes} and older JSON.
   */
  v14Tiling?: SkinnyTiling;
}

/** The versions `--decode` runs unless `--versions` says otherwise. */
export const DECODE_VERSIONS = ["v2", "v5", "tiles", "v14", "v15", "v16", "v17", "v18", "auto"];

/**
 * The decode-step products of `anchors` at `rows` rows (q and o share a shape when heads·D equals
 * the hidden size, as at every anchor; k and v always do; so do gate and up).
 *
 * @example
 * ```ts
 * decodeShapes().filter((s) => s.anchor === "29M"); // q/o 64×512×512, k/v 64×256×512, ...
 * ```
 */
export function decodeShapes(
  anchors: readonly Anchor[] = ANCHORS,
  rows: number = GENERATE_BENCH.batch,
): DecodeShape[] {
  const out: DecodeShape[] = [];
  for (const { name, config: c } of anchors) {
    const L = c.layers, C = c.hidden, Q = c.heads * c.headDim, KV = c.kvHeads * c.headDim;
    const products: Array<[string, number, number, number]> = [
      ["q", Q, C, L],
      ["k/v", KV, C, 2 * L],
      ["o", C, Q, L],
      ["gate/up", c.intermediate, C, 2 * L],
      ["down", C, c.intermediate, L],
      ["head", c.vocabSize, C, 1],
    ];
    for (const [role, N, K, count] of products) {
      const same = out.find((s) => s.anchor === name && s.N === N && s.K === K);
      if (same) {
        same.role += `/${role}`;
        same.perStep += count;
      } else {
        out.push({ anchor: name, role, perStep: count, M: rows, N, K, transB: true });
      }
    }
  }
  return out;
}

/**
 * Per anchor and version, the matmul time of one decode step: Σ perStep × median ms over its
 * shapes (only where the version ran every shape of the anchor). Lines to print.
 */
export function decodeStepLines(rows: MatmulBenchRow[], shapes: DecodeShape[]): string[] {
  const lines = ["matmul µs per decode step (Σ products × median; lower is better):"];
  const versions = [...new Set(rows.map((r) => r.version))];
  for (const anchor of [...new Set(shapes.map((s) => s.anchor))]) {
    const mine = shapes.filter((s) => s.anchor === anchor);
    const cells = versions.map((v) => {
      let us = 0;
      for (const s of mine) {
        const r = rows.find((x) =>
          x.version === v && x.M === s.M && x.N === s.N && x.K === s.K && x.layout === "NT"
        );
        if (!r || r.skipped || !Number.isFinite(r.ms)) return `${v} -`;
        us += s.perStep * r.ms * 1e3;
      }
      return `${v} ${us.toFixed(0)}`;
    });
    lines.push(`  ${anchor.padEnd(5)} ${cells.join("  ")}`);
  }
  return lines;
}
