/**
 * AdamW (decoupled weight decay, bias correction) with global-norm gradient clipping, and learning
 * rate schedules. Parameters packed in one arena (a `Transformer`'s, or any from `packTensors`)
 * are updated by one kernel in one dispatch, after one dispatch of partial sums of squares over all
 * gradients and one workgroup for the norm and clip scale (optim_packed.ts); other parameters get
 * those dispatches each. The update reads the clip scale on the GPU: nothing is read back, and
 * `gradNorm` can be read whenever convenient.
 *
 * A parameter larger than one storage binding (the 151,936 × 1024 embedding of Qwen3-0.6B is
 * 622 MB, llvmpipe binds 128 MiB) is summed and updated in blocks of elements that each fit, one
 * dispatch per block (its gradient and moments in the same blocks); the update of an element is
 * the same whatever block it falls in. An arena over one binding is updated parameter by parameter.
 *
 * @module
 */
import adamSource from "../../kernels/optim_adamw.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import { PackedAdamState } from "./optim_packed.ts";
import type { BufferSlice } from "../gpu/mod.ts";
import {
  blockRows,
  empty,
  f32,
  fillInPlace,
  fitsOneBinding,
  keep,
  params,
  rowBlocks,
  runtime,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";

const adamKernel: Kernel = { name: "optim_adamw", code: adamSource };
const WG = 256;

function partialsOf(n: number): number {
  return Math.max(1, Math.min(64, Math.ceil(n / (WG * 16))));
}

/** One block of elements of tensors of one size read side by side, and their bindings. */
interface ElementBlock {
  /** Elements in the block. */
  n: number;
  /** One binding per tensor, in the order given. */
  bindings: (GPUBuffer | BufferSlice)[];
}

/**
 * Tensors of `p`'s size (a parameter, its gradient, its moments) as blocks of elements that each
 * fit one storage binding, the same blocks in each: one block of their whole bindings when `p`
 * fits (the usual case), else blocks of a multiple of 64 elements (whole vec4 groups, starting
 * where a binding may).
 */
function elementBlocks(p: Tensor, ts: Tensor[]): ElementBlock[] {
  if (fitsOneBinding(p)) return [{ n: p.size, bindings: ts.map((t) => t.binding) }];
  const what = `AdamW: ${p.describe()}`;
  const blocks = ts.map((t) => rowBlocks(t, 1, what));
  return blocks[0].map((b, i) => ({ n: b.rows, bindings: blocks.map((bs) => bs[i].binding) }));
}

/**
 * Partial-sum slots {@link recordGradNorm} needs for `parameters`: per parameter, a few per
 * workgroup-sized stretch of elements, per block of elements when it spans more than one binding.
 */
export function gradNormPartials(parameters: readonly Tensor[]): number {
  const rt = runtime();
  let n = 0;
  for (const p of parameters) {
    if (fitsOneBinding(p)) {
      n += partialsOf(p.size);
      continue;
    }
    const per = blockRows(1, rt.storageBindingLimit, rt.storageOffsetAlignment, p.describe());
    for (let e = 0; e < p.size; e += per) n += partialsOf(Math.min(per, p.size - e));
  }
  return Math.max(1, n);
}

/**
 * Records the global L2 norm of the parameters' gradients and the clip scale
 * `min(1, maxNorm / (norm + 1e-6))` (1 when `maxNorm` <= 0) into `out` [2]. Missing gradients count
 * 0. `partial` holds at least {@link gradNormPartials} floats.
 */
export function recordGradNorm(
  parameters: readonly Tensor[],
  maxNorm: number,
  out: Tensor,
  partial: Tensor,
): void {
  const rt = runtime();
  const need = gradNormPartials(parameters);
  if (partial.size < need) {
    throw new RangeError(
      `recordGradNorm: ${partial.describe()} holds ${partial.size} partial sums, ${need} needed`,
    );
  }
  fillInPlace(partial, 0); // slots of parameters without a gradient count 0
  let base = 0;
  for (const p of parameters) {
    const g = p.grad;
    // the slots are counted from the parameter's size (as gradNormPartials counts them), the
    // blocks bound from its gradient (the same size)
    for (const b of elementBlocks(p, g ? [g] : [])) {
      const w = partialsOf(b.n);
      if (g) {
        rt.dispatch({
          kernel: adamKernel,
          entryPoint: "sumsq",
          bindings: [b.bindings[0], partial.binding, params([b.n, base, 0, 0])],
          workgroups: [w],
        });
      }
      base += w;
    }
  }
  rt.dispatch({
    kernel: adamKernel,
    entryPoint: "finalize",
    bindings: [partial.binding, out.binding, params([base, f32(maxNorm), 0, 0])],
    workgroups: [1],
  });
}

/** A learning rate as a constant or a function of the 0-based step. */
export type LearningRate = number | ((step: number) => number);

/** Options of {@link AdamW}; defaults follow PyTorch except where noted. */
export interface AdamWOptions {
  /** Learning rate or schedule (see {@link warmupCosine}). */
  lr: LearningRate;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01. */
  weightDecay?: number;
  /** Which parameters decay; default those of rank >= 2 (matrices, not norms or biases, as llm.c). */
  decay?: (p: Tensor) => boolean;
  /** Clip the global gradient norm to this (0 or absent: no clipping, the norm is still computed). */
  maxGradNorm?: number;
}

/**
 * AdamW over a fixed list of parameters.
 *
 * @example
 * ```ts
 * const opt = new AdamW(params, { lr: warmupCosine({ lr: 3e-4, warmup: 10, total: 200 }), maxGradNorm: 1 });
 * tidy(() => { loss(batch).backward(); opt.step(); opt.zeroGrad(); });
 * ```
 */
export class AdamW {
  /** The parameters, in order. */
  readonly parameters: readonly Tensor[];
  /** Steps taken. */
  stepCount = 0;
  /** [global gradient norm before clipping, clip scale] of the last step (GPU; read it when needed). */
  readonly gradNorm: Tensor;
  /**
   * True when the parameters are packed in one arena (as `Transformer`'s are) that fits one storage
   * binding: the step is then a fixed four dispatches and zeroGrad one, whatever the number of
   * parameters; otherwise each parameter is updated by its own dispatches (in blocks of elements
   * for one larger than a binding).
   */
  readonly packed: boolean;
  #m: Tensor[];
  #v: Tensor[];
  #partial: Tensor | null;
  #packed: PackedAdamState | null;
  #opts: Required<Omit<AdamWOptions, "decay">> & { decay: (p: Tensor) => boolean };

  /** @param parameters leaves with `requiresGrad`; @param opts hyper-parameters. */
  constructor(parameters: readonly Tensor[], opts: AdamWOptions) {
    parameters.forEach((p, i) => {
      p.expectDtype("AdamW", "f32");
      if (!p.requiresGrad || !p.isContiguous) {
        throw new Error(
          `AdamW: ${p.describe()} must be a contiguous tensor with requiresGrad = true`,
        );
      }
      const j = parameters.indexOf(p);
      if (j !== i) {
        // it would be updated twice per step with one set of moments each
        throw new Error(`AdamW: parameter ${i} (${p.describe()}) repeats parameter ${j}`);
      }
    });
    this.parameters = [...parameters];
    this.#opts = {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
      maxGradNorm: 0,
      decay: (p) => p.rank >= 2,
      ...opts,
    };
    const o = this.#opts;
    const bad = (name: string, v: number, range: string) =>
      new RangeError(`AdamW: ${name} ${v} must be in ${range}`);
    if (!(o.beta1 >= 0 && o.beta1 < 1)) throw bad("beta1", o.beta1, "[0, 1)");
    if (!(o.beta2 >= 0 && o.beta2 < 1)) throw bad("beta2", o.beta2, "[0, 1)");
    if (!(o.eps >= 0 && Number.isFinite(o.eps))) throw bad("eps", o.eps, "[0, inf)");
    if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) {
      throw bad("weightDecay", o.weightDecay, "[0, inf)");
    }
    if (!(o.maxGradNorm >= 0)) throw bad("maxGradNorm", o.maxGradNorm, "[0, inf] (0: no clipping)");
    this.gradNorm = keep(zeros([2]));
    this.#packed = PackedAdamState.tryCreate(
      parameters,
      parameters.map((p) => (o.decay(p) ? o.weightDecay : 0)),
    );
    this.packed = this.#packed !== null;
    if (this.#packed) {
      this.#m = [];
      this.#v = [];
      this.#partial = null;
    } else {
      this.#m = parameters.map((p) => keep(zeros(p.shape)));
      this.#v = parameters.map((p) => keep(zeros(p.shape)));
      this.#partial = keep(empty([gradNormPartials(parameters)], "f32", "gradNormPartials"));
    }
  }

  /** The learning rate at step `step` (0-based). */
  lrAt(step: number): number {
    const lr = this.#opts.lr;
    return typeof lr === "number" ? lr : lr(step);
  }

  // A parameter released while the optimizer holds it (its gradient goes with it) would otherwise
  // be skipped silently, as if it had no gradient.
  #checkAlive(): void {
    this.parameters.forEach((p, i) => {
      if (p.isDisposed) {
        throw new Error(
          `AdamW: parameter ${i} (${p.describe()}) was released while the optimizer holds it`,
        );
      }
    });
  }

  /** One update of every parameter with a gradient (records dispatches; no readback). */
  step(): void {
    this.#checkAlive();
    const o = this.#opts;
    const lr = this.lrAt(this.stepCount);
    if (!Number.isFinite(lr) || lr < 0) {
      throw new RangeError(`AdamW: learning rate ${lr} at step ${this.stepCount}`);
    }
    this.stepCount++;
    const t = this.stepCount;
    const bc1 = 1 - o.beta1 ** t;
    const bc2 = 1 - o.beta2 ** t;
    const packed = this.#packed;
    if (packed) {
      packed.prepareStep();
      packed.recordGradNorm(o.maxGradNorm, this.gradNorm);
      packed.recordUpdate(
        { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, bc1, bc2 },
        this.gradNorm,
      );
      return;
    }
    // the binding limit may have been lowered since the optimizer was made (more blocks, slots)
    const slots = gradNormPartials(this.parameters);
    if (this.#partial!.size < slots) {
      this.#partial!.dispose();
      this.#partial = keep(empty([slots], "f32", "gradNormPartials"));
    }
    recordGradNorm(this.parameters, o.maxGradNorm, this.gradNorm, this.#partial!);
    const rt = runtime();
    this.parameters.forEach((p, i) => {
      if (!p.grad || p.size === 0) return;
      const wd = o.decay(p) ? o.weightDecay : 0;
      // packed parameters (and their gradients) mixed with separate ones come here as slices
      const ts = [p, p.grad, this.#m[i], this.#v[i]];
      for (const b of elementBlocks(p, ts)) {
        const n4 = Math.ceil(b.n / 4);
        rt.dispatch({
          kernel: adamKernel,
          entryPoint: "adamw",
          bindings: [
            ...b.bindings,
            this.gradNorm.binding,
            params([
              n4,
              f32(lr),
              f32(o.beta1),
              f32(o.beta2),
              f32(o.eps),
              f32(wd),
              f32(bc1),
              f32(bc2),
            ]),
          ],
          workgroups: grid(Math.ceil(n4 / WG)),
        });
      }
    });
  }

  /** Sets every gradient to zero in place (the buffers are kept for the next backward). */
  zeroGrad(): void {
    this.#checkAlive();
    if (this.#packed) this.#packed.zeroGrad();
    else for (const p of this.parameters) if (p.grad) fillInPlace(p.grad, 0);
  }

  /** Frees the moments and buffers (the parameters stay). */
  dispose(): void {
    for (const t of [...this.#m, ...this.#v, this.gradNorm]) t.dispose();
    this.#partial?.dispose();
    this.#packed?.dispose();
  }
}

/**
 * Linear warm-up from lr/warmup to lr over `warmup` steps, then cosine decay to `minLr` at `total`
 * (llm.c's schedule); constant `minLr` after `total`.
 *
 * @example
 * ```ts
 * const lr = warmupCosine({ lr: 1e-3, warmup: 100, total: 1000, minLr: 1e-4 });
 * lr(0); // 1e-5
 * ```
 */
export function warmupCosine(
  o: { lr: number; warmup: number; total: number; minLr?: number },
): (step: number) => number {
  const minLr = o.minLr ?? 0;
  if (!(o.warmup >= 0 && o.total >= o.warmup)) {
    throw new RangeError(`warmupCosine: need 0 <= warmup (${o.warmup}) <= total (${o.total})`);
  }
  return (step) => {
    if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
    if (step >= o.total) return minLr;
    const ratio = (step - o.warmup) / Math.max(1, o.total - o.warmup);
    return minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (o.lr - minLr);
  };
}

/** Linear warm-up over `warmup` steps, then constant. */
export function warmupConstant(o: { lr: number; warmup: number }): (step: number) => number {
  return (step) => (step < o.warmup ? (o.lr * (step + 1)) / o.warmup : o.lr);
}
