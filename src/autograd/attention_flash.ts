/**
 * Version 2 of the fused causal attention (kernels/attention_flash.wgsl): register-tiled, each
 * thread computing a 4 × 4 block of scores from vec4 loads (v1 computes one score per thread, two
 * workgroup loads per FMA), the G query heads of a key/value head stacked in one workgroup so that
 * each K/V tile serves all of them. Same operands, semantics and dispatch count as v1 (one forward,
 * two backward); attention_fused.ts picks the version ({@link
 * import("./attention_fused.ts").setFusedAttentionVersion}).
 *
 * @module
 */
import attentionSource from "../../kernels/attention_flash.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import type { AttentionShape } from "./attention_fused.ts";
import { needsGrad, record } from "./tape.ts";

const flashKernel: Kernel = { name: "attention_flash", code: attentionSource };

/**
 * One entry point's thread tile: `tr` × `tc` threads, each owning 4 rows, 4 columns of a score
 * tile and `dv` vec4 of the D outputs per row (so D = 4·dv·tc). Rows are queries in `forward` and
 * `dq`, keys in `dkv`.
 */
export interface FlashTile {
  /** Thread rows (4 tile rows each). */
  tr: number;
  /** Thread columns (4 tile columns each; D/4 = tc·dv). */
  tc: number;
  /** Output vec4 per thread and row: 1, 2 or 4. */
  dv: number;
  /** vec4 of padding per tile row (0 or 1): keeps threads reading across rows in distinct banks. */
  pad: number;
}

/** The tiles of the three entry points. */
export interface FlashTiles {
  /** `forward`. */
  forward: FlashTile;
  /** `backward_dq`. */
  dq: FlashTile;
  /** `backward_dkv`. */
  dkv: FlashTile;
}

// Workgroup bytes of each entry point (the arrays it uses in the kernel), from its tile.
const bytes = {
  forward: (D: number, t: FlashTile) => {
    const dp = D / 4 + t.pad, rows = 4 * t.tr, cols = 4 * t.tc;
    return 16 * (rows * dp + cols * dp + rows * (t.tc + t.pad)) + 4 * rows * t.tc;
  },
  dq: (D: number, t: FlashTile) => {
    const dp = D / 4 + t.pad, rows = 4 * t.tr, cols = 4 * t.tc;
    return 16 * (2 * rows * dp + 2 * cols * dp + rows * (t.tc + t.pad));
  },
  dkv: (D: number, t: FlashTile) => {
    const dp = D / 4 + t.pad, rows = 4 * t.tr, cols = 4 * t.tc;
    return 16 * (2 * rows * dp + 2 * cols * dp + 2 * rows * (t.tc + t.pad)) + 12 * cols;
  },
};

/** Workgroup bytes that entry point `kind` uses at head dimension `D` with tile `t`. */
export function flashTileBytes(kind: keyof FlashTiles, D: number, t: FlashTile): number {
  return bytes[kind](D, t);
}

/**
 * The tiles for head dimension `D` within `workgroupBytes` and `maxThreads`: per entry point the
 * most thread rows (up to `maxTr`) that fit, padded when the padding fits too. Null when D is not a
 * multiple of 4 or some entry point has no tile (D = 64 needs about 19 KiB; the caller then uses
 * version 1).
 *
 * @example
 * ```ts
 * flashAttentionTiles(64, 32768)?.forward; // { tr: 8, tc: 8, dv: 2, pad: 1 }
 * ```
 */
export function flashAttentionTiles(
  D: number,
  workgroupBytes: number,
  maxThreads = 256,
  maxTr = 16,
): FlashTiles | null {
  if (!(Number.isInteger(D) && D >= 4 && D % 4 === 0)) return null;
  const D4 = D / 4;
  // the fewest vec4 per thread that keep the score tile's columns at 32 or fewer (COLS = 4·tc)
  const dvs = [1, 2, 4].filter((dv) => D4 % dv === 0);
  const dv = dvs.find((x) => D4 / x <= 8) ?? dvs[dvs.length - 1];
  const tc = D4 / dv;
  const pick = (kind: keyof FlashTiles): FlashTile | null => {
    for (let tr = maxTr; tr >= 1; tr /= 2) {
      if (tr * tc > maxThreads) continue;
      for (const pad of [1, 0]) {
        const t = { tr, tc, dv, pad };
        if (bytes[kind](D, t) <= workgroupBytes) return t;
      }
    }
    return null;
  };
  const forward = pick("forward"), dq = pick("dq"), dkv = pick("dkv");
  return forward && dq && dkv ? { forward, dq, dkv } : null;
}

/**
 * Throws a RangeError naming the problem when `tiles` cannot serve head dimension `D` (each tile
 * needs D = 4·dv·tc with dv 1, 2 or 4, whole positive tr and tc, and pad 0 or 1) or, given the
 * device's `limits`, would need more workgroup memory or threads than it offers (a pipeline the
 * device rejects would leave its outputs unwritten).
 */
export function checkFlashTiles(
  op: string,
  D: number,
  tiles: FlashTiles,
  limits?: { workgroupBytes: number; maxThreads: number },
): void {
  for (const kind of ["forward", "dq", "dkv"] as const) {
    const { tr, tc, dv, pad } = tiles[kind];
    const whole = (x: number) => Number.isInteger(x) && x >= 1;
    if (!whole(tr) || !whole(tc) || ![1, 2, 4].includes(dv) || (pad !== 0 && pad !== 1)) {
      throw new RangeError(`${op}: ${kind} tile ${JSON.stringify(tiles[kind])} is malformed`);
    }
    if (4 * dv * tc !== D) {
      throw new RangeError(`${op}: ${kind} tile covers D = ${4 * dv * tc}, not ${D} (4·dv·tc)`);
    }
    if (!limits) continue;
    const need = flashTileBytes(kind, D, tiles[kind]);
    if (need > limits.workgroupBytes || tr * tc > limits.maxThreads) {
      throw new RangeError(
        `${op}: ${kind} tile ${JSON.stringify(tiles[kind])} needs ${need} bytes of workgroup ` +
          `memory and ${tr * tc} threads; this device offers ${limits.workgroupBytes} and ` +
          `${limits.maxThreads}`,
      );
    }
  }
}

const constantsOf = (D: number, t: FlashTile) => ({
  D,
  TR: t.tr,
  TC: t.tc,
  DV: t.dv,
  PAD: t.pad,
  WG: t.tr * t.tc,
});

/**
 * Records version 2's forward (one dispatch) and its backward (two) for operands that
 * attention_fused.ts has already checked (`shape`) and tiles that fit the device; returns the
 * output [B, Tq, Hq, D]. Use {@link import("./attention_fused.ts").fusedCausalAttention}.
 */
export function flashCausalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  shape: AttentionShape,
  tiles: FlashTiles,
  scale: number,
): Tensor {
  const { B, Tq, Tk, Hq, Hkv, D } = shape;
  const G = Hq / Hkv;
  const rt = runtime();
  const uniforms = (t: FlashTile) =>
    params([
      B,
      Tq,
      Tk,
      Hq,
      Hkv,
      Math.ceil((Tq * G) / (4 * t.tr)),
      Math.ceil(Tk / (4 * t.tr)),
      f32(scale),
    ]);
  const rowBlocks = (t: FlashTile) => B * Hkv * Math.ceil((Tq * G) / (4 * t.tr));
  const qc = materialize(q), kc = materialize(k), vc = materialize(v);
  const out = empty(q.shape, "f32", "attention");
  const stats = empty([B, Tq, Hq, 2], "f32", "attention_stats");
  const fw = tiles.forward;
  rt.dispatch({
    kernel: flashKernel,
    entryPoint: "forward",
    constants: constantsOf(D, fw),
    bindings: [qc.binding, kc.binding, vc.binding, uniforms(fw), out.binding, stats.binding],
    workgroups: grid(rowBlocks(fw)),
  });
  return record(out, "causalSelfAttention", [q, k, v], (dout) => {
    // materialised again: the forward's copies of strided inputs belong to the forward's scope
    const qb = materialize(q), kb = materialize(k), vb = materialize(v), d = materialize(dout);
    const delta = empty([B, Tq, Hq], "f32", "attention_delta");
    const dq = empty(q.shape, "f32", "grad");
    const dk = empty(k.shape, "f32", "grad");
    const dv = empty(v.shape, "f32", "grad");
    const tq = tiles.dq, tk = tiles.dkv;
    // dq first: it writes the Δ = rowsum(dO ∘ O) that dkv reads
    rt.dispatch({
      kernel: flashKernel,
      entryPoint: "backward_dq",
      constants: constantsOf(D, tq),
      bindings: [
        qb.binding,
        kb.binding,
        vb.binding,
        uniforms(tq),
        out.binding,
        stats.binding,
        d.binding,
        delta.binding,
        dq.binding,
      ],
      workgroups: grid(rowBlocks(tq)),
    });
    rt.dispatch({
      kernel: flashKernel,
      entryPoint: "backward_dkv",
      constants: constantsOf(D, tk),
      bindings: [
        qb.binding,
        kb.binding,
        vb.binding,
        uniforms(tk),
        stats.binding,
        d.binding,
        delta.binding,
        dk.binding,
        dv.binding,
      ],
      workgroups: grid(B * Hkv * Math.ceil(Tk / (4 * tk.tr))),
    });
    return [needsGrad(q) ? dq : null, needsGrad(k) ? dk : null, needsGrad(v) ? dv : null];
  });
}
