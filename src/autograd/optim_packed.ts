/**
 * AdamW's state for parameters packed in one arena (src/tensor/arena.ts, as `Transformer` packs
 * its own): the gradients, both moments and a segment table live in arenas with the parameters'
 * layout, so the whole optimizer step is four dispatches whatever the number of parameters (the
 * partial sums of squares, the norm and clip scale, the update) and zeroing the gradients one fill.
 * {@link AdamW} uses it when its parameters allow and falls back to a dispatch per parameter.
 *
 * @module
 */
import adamSource from "../../kernels/optim_adamw.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import {
  arenaCapacity,
  copyInto,
  f32,
  fillInPlace,
  keep,
  params,
  runtime,
  sharedArena,
  type Storage,
  Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";

const adamKernel: Kernel = { name: "optim_adamw", code: adamSource };
const WG = 256;
const CHUNK = 64; // elements per entry of the chunk table (the arena alignment's unit)
const NONE = 0xffffffff;

/** The per-step values of the update. */
export interface AdamStepValues {
  /** Learning rate of this step. */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ. */
  bc1: number;
  bc2: number;
}

/** Gradients, moments and segment tables in arenas shaped like the parameters' arena. */
export class PackedAdamState {
  #parameters: readonly Tensor[];
  #offsets: number[];
  #arena: Tensor; // the parameters' whole arena, as one tensor
  #grads: Tensor; // the gradients' arena; each parameter's `grad` is a view of it
  #m: Tensor;
  #v: Tensor;
  #segs: Tensor;
  #chunks: Tensor;
  #partial: Tensor;
  #n4: number;
  #parts: number;
  #active: boolean[];
  #segTable: Uint32Array;
  #factories: (() => Tensor)[];

  private constructor(
    parameters: readonly Tensor[],
    storage: Storage,
    offsets: number[],
    weightDecay: number[],
  ) {
    const length = storage.length;
    this.#parameters = parameters;
    this.#offsets = offsets;
    this.#n4 = length / 4;
    this.#arena = keep(new Tensor(storage, [length], "f32", "parameterArena"));
    this.#grads = keep(zeros([length]));
    this.#m = keep(zeros([length]));
    this.#v = keep(zeros([length]));
    const segs = new Uint32Array(parameters.length * 4);
    const chunks = new Uint32Array(Math.ceil(length / CHUNK)).fill(NONE);
    const wdBits = new Uint32Array(new Float32Array(weightDecay).buffer);
    parameters.forEach((p, i) => {
      segs.set([offsets[i], p.size, wdBits[i], 1], 4 * i);
      const first = offsets[i] / CHUNK, end = Math.ceil((offsets[i] + p.size) / CHUNK);
      for (let c = first; c < end; c++) chunks[c] = i;
    });
    this.#segs = keep(tensor(segs, [segs.length]));
    this.#chunks = keep(tensor(chunks, [chunks.length]));
    this.#parts = Math.max(1, Math.min(256, Math.ceil(this.#n4 / (WG * 16))));
    this.#partial = keep(zeros([this.#parts]));
    // Every parameter starts active, as a step usually finds them: the first step then needs no
    // upload of the table, so it can be recorded into a caller's batch (rt.recordInto).
    this.#active = parameters.map(() => true);
    this.#segTable = segs;
    this.#factories = parameters.map((p, i) => () => this.#view(p, i, true));
    parameters.forEach((p, i) => {
      this.#attach(p, i);
      p.gradFactory = this.#factories[i];
    });
  }

  /**
   * The packed state for `parameters`, or null when they are not contiguous views of one arena at
   * aligned offsets (then AdamW updates them one by one). `weightDecay[i]` is parameter i's decay.
   */
  static tryCreate(
    parameters: readonly Tensor[],
    weightDecay: number[],
  ): PackedAdamState | null {
    const shared = sharedArena(parameters);
    if ("why" in shared) return null;
    if (shared.layout.length % CHUNK !== 0) return null;
    // the arenas are bound whole: past one binding's size (the device's, or the runtime's
    // lowered limit), the per-parameter path, which binds a parameter over it in blocks
    if (shared.layout.length > arenaCapacity()) return null;
    if (shared.layout.length * 4 > runtime().storageBindingLimit) return null;
    return new PackedAdamState(parameters, shared.storage, shared.layout.offsets, weightDecay);
  }

  // A view of the gradient arena for parameter i (zeroed when asked).
  #view(p: Tensor, i: number, zero: boolean): Tensor {
    const view = keep(
      new Tensor(this.#grads.storage, p.shape, "f32", "grad", undefined, this.#offsets[i]),
    );
    if (zero) fillInPlace(view, 0);
    return view;
  }

  // Moves a gradient that is not the arena's view (set before the optimizer existed, or replaced
  // by the caller since) into the arena.
  #attach(p: Tensor, i: number): void {
    const current = p.grad;
    if (!current || this.#isOurs(current, i)) return;
    const view = this.#view(p, i, false);
    copyInto(current, view);
    current.dispose();
    p.grad = view;
  }

  #isOurs(g: Tensor, i: number): boolean {
    return !g.isDisposed && g.storage === this.#grads.storage && g.offset === this.#offsets[i];
  }

  /**
   * Before a step: moves foreign gradients into the arena and marks which parameters have a
   * gradient. One without (never reached by a backward, or its `grad` cleared) is skipped, as
   * PyTorch skips it: no decay, no moment update. The table is uploaded only when that set changes.
   */
  prepareStep(): void {
    let changed = false;
    this.#parameters.forEach((p, i) => {
      this.#attach(p, i);
      const active = p.grad !== null;
      if (active !== this.#active[i]) {
        this.#active[i] = active;
        this.#segTable[4 * i + 3] = active ? 1 : 0;
        changed = true;
      }
    });
    if (changed) runtime().write(this.#segs.buffer, this.#segTable);
  }

  /**
   * Records the global gradient norm and the clip scale (as `recordGradNorm` in optim.ts) into
   * `out` [2]: one dispatch for the partial sums over the whole arena, one for the total.
   */
  recordGradNorm(maxNorm: number, out: Tensor): void {
    const rt = runtime();
    rt.dispatch({
      kernel: adamKernel,
      entryPoint: "sumsq_packed",
      bindings: [
        this.#segs.binding,
        this.#chunks.binding,
        this.#grads.binding,
        this.#partial.binding,
        params([this.#n4, 0, 0, 0]),
      ],
      workgroups: [this.#parts],
    });
    rt.dispatch({
      kernel: adamKernel,
      entryPoint: "finalize",
      bindings: [this.#partial.binding, out.binding, params([this.#parts, f32(maxNorm), 0, 0])],
      workgroups: [1],
    });
  }

  /** Records the update of every parameter, reading the clip scale from `gradNorm` [2]. */
  recordUpdate(s: AdamStepValues, gradNorm: Tensor): void {
    runtime().dispatch({
      kernel: adamKernel,
      entryPoint: "adamw_packed",
      bindings: [
        this.#segs.binding,
        this.#chunks.binding,
        this.#arena.binding,
        this.#grads.binding,
        this.#m.binding,
        this.#v.binding,
        gradNorm.binding,
        params([
          this.#n4,
          f32(s.lr),
          f32(s.beta1),
          f32(s.beta2),
          f32(s.eps),
          f32(s.bc1),
          f32(s.bc2),
          0,
        ]),
      ],
      workgroups: grid(Math.ceil(this.#n4 / WG)),
    });
  }

  /** Zeroes every gradient with one fill (gradients stay attached, as the per-tensor path). */
  zeroGrad(): void {
    this.#parameters.forEach((p, i) => this.#attach(p, i));
    fillInPlace(this.#grads, 0);
  }

  /** Frees the arenas it owns (the parameters and their gradient views stay valid until freed). */
  dispose(): void {
    // Only its own: a newer optimizer of the same parameters keeps handing out its views.
    this.#parameters.forEach((p, i) => {
      if (p.gradFactory === this.#factories[i]) p.gradFactory = null;
    });
    for (const t of [this.#arena, this.#grads, this.#m, this.#v, this.#segs, this.#chunks]) {
      t.dispose();
    }
    this.#partial.dispose();
  }
}
