/**
 * Causal grouped-query attention as one fused kernel (kernels/attention_fused.wgsl): one dispatch
 * forward, two backward, where the composed op (attention.ts) takes about 19 per layer and
 * materialises the [B, H, Tq, Tk] scores, probabilities and their gradients. The forward saves only
 * each row's softmax statistics (max and 1/sum); the backward recomputes the probabilities.
 *
 * Two kernel versions share this entry point: 1 (kernels/attention_fused.wgsl, one score per
 * thread, every D) and 2 (kernels/attention_flash.wgsl via attention_flash.ts: register-tiled,
 * D a multiple of 4, tiles that fit the workgroup memory). {@link setFusedAttentionVersion} picks
 * the default (2); where version 2 has no tile, version 1 runs.
 *
 * @module
 */
import attentionSource from "../../kernels/attention_fused.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { empty, f32, materialize, params, runtime, type Tensor } from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { needsGrad, record } from "./tape.ts";
import {
  checkFlashTiles,
  flashAttentionTiles,
  flashCausalAttention,
  type FlashTiles,
} from "./attention_flash.ts";

const attentionKernel: Kernel = { name: "attention_fused", code: attentionSource };

/** The sizes of one attention call, read from its operands. */
export interface AttentionShape {
  /** Batch. */
  B: number;
  /** Query positions (the last Tq of the Tk keys). */
  Tq: number;
  /** Key/value positions. */
  Tk: number;
  /** Query heads. */
  Hq: number;
  /** Key/value heads (Hq is a multiple). */
  Hkv: number;
  /** Head dimension. */
  D: number;
}

/**
 * Checks the operands of an attention op (`q` [B, Tq, Hq, D]; `k`, `v` [B, Tk, Hkv, D] with
 * Tk >= Tq and Hq a multiple of Hkv; f32; a finite scale) and returns their sizes. Throws a
 * RangeError or TypeError naming the op, the shapes and the problem.
 */
export function checkAttention(
  op: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scale?: number,
): AttentionShape {
  const bad = (why: string) =>
    new RangeError(
      `${op}: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}: ${why}`,
    );
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw bad("expected [B, T, H, D] tensors");
  q.expectDtype(op, "f32");
  k.expectDtype(op, "f32");
  v.expectDtype(op, "f32");
  const [B, Tq, Hq, D] = q.shape;
  const [, Tk, Hkv] = k.shape;
  if (k.shape[0] !== B || k.shape[3] !== D) throw bad("k does not match q");
  if (Tk < Tq) throw bad(`fewer keys (${Tk}) than queries (${Tq})`);
  if (v.shape.some((d, i) => d !== k.shape[i])) throw bad("v does not match k");
  if (Hkv === 0 || Hq % Hkv !== 0) {
    throw bad(`${Hq} query heads are not a multiple of ${Hkv} key/value heads`);
  }
  if (scale !== undefined && !Number.isFinite(scale)) {
    throw bad(`scale ${scale} is not a finite number`);
  }
  return { B, Tq, Tk, Hq, Hkv, D };
}

/** One kernel's tile: `bq` query rows by `bk` key rows, one thread per score. */
export interface AttentionTile {
  /** Query rows per tile. */
  bq: number;
  /** Key rows per tile. */
  bk: number;
  /** Floats of padding on the rows that threads read across (0 or 1). */
  pad: number;
}

/** The tiles of the three entry points. */
export interface AttentionTiles {
  /** `forward`. */
  forward: AttentionTile;
  /** `backward_dq`. */
  dq: AttentionTile;
  /** `backward_dkv`. */
  dkv: AttentionTile;
}

// Largest first: more rows per tile means each K/V (or Q/dO) row loaded is used more times.
const CANDIDATES: ReadonlyArray<[number, number]> = [
  [16, 16],
  [16, 8],
  [8, 16],
  [8, 8],
  [8, 4],
  [4, 8],
  [4, 4],
  [2, 8],
  [8, 2],
  [2, 4],
  [4, 2],
  [2, 2],
];
// Register columns a thread holds (the kernel's MAXC).
const MAXC = 16;

// Workgroup bytes of each entry point (the arrays it uses in the kernel).
const bytes = {
  forward: (D: number, bq: number, bk: number, pad: number) =>
    4 * (bq * D + 2 * bk * (D + pad) + 2 * bq * bk),
  dq: (D: number, bq: number, bk: number, pad: number) =>
    4 * (2 * bq * D + 2 * bk * (D + pad) + bq * bk),
  dkv: (D: number, bq: number, bk: number, pad: number) =>
    4 * (2 * bk * D + 2 * bq * (D + pad) + 2 * bk * bq + 2 * bq),
};

/**
 * The largest tiles whose workgroup memory fits `workgroupBytes` for head dimension `D` (threads
 * at most `maxThreads`; each thread holds at most 16 output columns), or null when none fits (D
 * past 128 at 16 KiB): the caller then uses the composed op.
 *
 * @example
 * ```ts
 * fusedAttentionTiles(64, 16384)?.forward; // { bq: 16, bk: 16, pad: 1 }
 * ```
 */
export function fusedAttentionTiles(
  D: number,
  workgroupBytes: number,
  maxThreads = 256,
): AttentionTiles | null {
  const pick = (kind: keyof typeof bytes): AttentionTile | null => {
    for (const [bq, bk] of CANDIDATES) {
      const cols = Math.ceil(D / (kind === "dkv" ? bq : bk));
      if (bq * bk > maxThreads || cols > MAXC) continue;
      for (const pad of [1, 0]) {
        if (bytes[kind](D, bq, bk, pad) <= workgroupBytes) return { bq, bk, pad };
      }
    }
    return null;
  };
  const forward = pick("forward"), dq = pick("dq"), dkv = pick("dkv");
  return D >= 1 && forward && dq && dkv ? { forward, dq, dkv } : null;
}

/** Options of {@link fusedCausalAttention}. */
export interface FusedAttentionOptions {
  /** Score scale; default 1/√D. */
  scale?: number;
  /** Workgroup memory the tiles may use; default the device's limit. Tests pass 16384. */
  workgroupBytes?: number;
  /** Kernel version; default {@link fusedAttentionVersion}. */
  version?: FusedAttentionVersion;
  /** Version 2's tiles instead of the largest that fit (tests; they must fit the device). */
  flashTiles?: FlashTiles;
}

/**
 * 1: kernels/attention_fused.wgsl (one score per thread); 2: kernels/attention_flash.wgsl
 * (register-tiled, attention_flash.ts), which falls back to 1 where D is not a multiple of 4 or its
 * tiles do not fit the workgroup memory.
 */
export type FusedAttentionVersion = 1 | 2;

let defaultVersion: FusedAttentionVersion = 2;

/**
 * Sets the kernel version {@link fusedCausalAttention} uses when a call does not name one (default
 * 2); returns the previous one. Benches and tests compare the two with it.
 *
 * @example
 * ```ts
 * const prev = setFusedAttentionVersion(1);
 * try { model.loss(tokens, targets).backward(); } finally { setFusedAttentionVersion(prev); }
 * ```
 */
export function setFusedAttentionVersion(version: FusedAttentionVersion): FusedAttentionVersion {
  if (version !== 1 && version !== 2) {
    throw new RangeError(`setFusedAttentionVersion: ${version} is not 1 or 2`);
  }
  const prev = defaultVersion;
  defaultVersion = version;
  return prev;
}

/** The kernel version {@link fusedCausalAttention} uses by default. */
export function fusedAttentionVersion(): FusedAttentionVersion {
  return defaultVersion;
}

/**
 * Version 2's tiles on this device for head dimension `D` (null: version 1 runs instead).
 *
 * @example
 * ```ts
 * deviceFlashTiles(64)?.forward; // { tr: 8, tc: 8, dv: 2, pad: 1 } at 32 KiB
 * ```
 */
export function deviceFlashTiles(D: number, workgroupBytes?: number): FlashTiles | null {
  const limits = runtime().gpu.limits;
  return flashAttentionTiles(
    D,
    workgroupBytes ?? limits.maxComputeWorkgroupStorageSize ?? 16384,
    limits.maxComputeInvocationsPerWorkgroup ?? 256,
  );
}

/** The tiles the device's limits allow for head dimension `D` (null: use the composed op). */
export function deviceAttentionTiles(D: number, workgroupBytes?: number): AttentionTiles | null {
  const limits = runtime().gpu.limits;
  return fusedAttentionTiles(
    D,
    workgroupBytes ?? limits.maxComputeWorkgroupStorageSize ?? 16384,
    limits.maxComputeInvocationsPerWorkgroup ?? 256,
  );
}

const constantsOf = (D: number, t: AttentionTile) => ({
  D,
  BQ: t.bq,
  BK: t.bk,
  PAD: t.pad,
  WG: t.bq * t.bk,
});

/**
 * softmax(q·kᵀ·scale + causal mask)·v per head, fused: the semantics of
 * {@link import("./attention.ts").causalSelfAttention} (q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D],
 * Tk >= Tq, query i sees keys 0..i + Tk − Tq, query head h reads kv head ⌊h / (Hq/Hkv)⌋), in one
 * dispatch forward and two backward. Strided inputs are materialised. Throws when the operands are
 * empty or when no tile fits the head dimension (see {@link fusedAttentionTiles}).
 *
 * @example
 * ```ts
 * const o = fusedCausalAttention(q, k, v); // q [B,T,8,64], k/v [B,T,2,64]
 * ```
 */
export function fusedCausalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: FusedAttentionOptions = {},
): Tensor {
  const op = "fusedCausalAttention";
  const { B, Tq, Tk, Hq, Hkv, D } = checkAttention(op, q, k, v, opts.scale);
  if (q.size === 0 || k.size === 0) {
    throw new RangeError(`${op}: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}: empty operands`);
  }
  const version = opts.version ?? defaultVersion;
  if (version !== 1 && version !== 2) {
    throw new RangeError(`${op}: version ${version} is not 1 or 2`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (opts.flashTiles) {
    const lim = runtime().gpu.limits;
    checkFlashTiles(op, D, opts.flashTiles, {
      workgroupBytes: opts.workgroupBytes ?? lim.maxComputeWorkgroupStorageSize ?? 16384,
      maxThreads: lim.maxComputeInvocationsPerWorkgroup ?? 256,
    });
  }
  const flash = version === 2 ? opts.flashTiles ?? deviceFlashTiles(D, opts.workgroupBytes) : null;
  if (flash) return flashCausalAttention(q, k, v, { B, Tq, Tk, Hq, Hkv, D }, flash, scale);
  const tiles = deviceAttentionTiles(D, opts.workgroupBytes);
  if (!tiles) {
    throw new RangeError(`${op}: head dimension ${D} leaves no tile within the workgroup memory`);
  }
  const rt = runtime();
  const uniforms = (bq: number, bk: number) =>
    params([B, Tq, Tk, Hq, Hkv, Math.ceil(Tq / bq), Math.ceil(Tk / bk), f32(scale)]);
  const qc = materialize(q), kc = materialize(k), vc = materialize(v);
  const out = empty(q.shape, "f32", "attention");
  const stats = empty([B, Hq, Tq, 2], "f32", "attention_stats");
  const fw = tiles.forward;
  rt.dispatch({
    kernel: attentionKernel,
    entryPoint: "forward",
    constants: constantsOf(D, fw),
    bindings: [
      qc.binding,
      kc.binding,
      vc.binding,
      uniforms(fw.bq, fw.bk),
      out.binding,
      stats.binding,
    ],
    workgroups: grid(B * Hq * Math.ceil(Tq / fw.bq)),
  });
  return record(out, "causalSelfAttention", [q, k, v], (dout) => {
    // materialised again: the forward's copies of strided inputs belong to the forward's scope
    const qb = materialize(q), kb = materialize(k), vb = materialize(v), d = materialize(dout);
    const delta = empty([B, Hq, Tq], "f32", "attention_delta");
    const dq = empty(q.shape, "f32", "grad");
    const dk = empty(k.shape, "f32", "grad");
    const dv = empty(v.shape, "f32", "grad");
    const tq = tiles.dq, tk = tiles.dkv;
    // dq first: it writes the Δ = rowsum(dO ∘ O) that dkv reads
    rt.dispatch({
      kernel: attentionKernel,
      entryPoint: "backward_dq",
      constants: constantsOf(D, tq),
      bindings: [
        qb.binding,
        kb.binding,
        vb.binding,
        uniforms(tq.bq, tq.bk),
        out.binding,
        stats.binding,
        d.binding,
        delta.binding,
        dq.binding,
      ],
      workgroups: grid(B * Hq * Math.ceil(Tq / tq.bq)),
    });
    rt.dispatch({
      kernel: attentionKernel,
      entryPoint: "backward_dkv",
      constants: constantsOf(D, tk),
      bindings: [
        qb.binding,
        kb.binding,
        vb.binding,
        uniforms(tk.bq, tk.bk),
        stats.binding,
        d.binding,
        delta.binding,
        dk.binding,
        dv.binding,
      ],
      workgroups: grid(B * Hkv * Math.ceil(Tk / tk.bk)),
    });
    return [needsGrad(q) ? dq : null, needsGrad(k) ? dk : null, needsGrad(v) ? dv : null];
  });
}
