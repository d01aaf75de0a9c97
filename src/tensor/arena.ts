/**
 * Tensors packed into one buffer: a model's parameters live in one arena, each a contiguous view
 * at an offset that a binding can start at, so kernels bind each parameter as a slice (no copy)
 * while the optimizer updates all of them, their gradients and moments with one dispatch each
 * (src/autograd/optim.ts).
 *
 * @module
 */
import { Storage, Tensor } from "./tensor.ts";
import { runtime } from "./runtime.ts";
import { copyInto, fillInPlace } from "./creation.ts";
import { fmtShape } from "./shape.ts";

/**
 * Elements every view of an arena starts at a multiple of: 64 (256 bytes, WebGPU's usual
 * `minStorageBufferOffsetAlignment`, and a whole number of vec4 groups of 16), or more where the
 * device asks for more.
 */
export function arenaAlignment(): number {
  return Math.max(64, runtime().storageOffsetAlignment / 4);
}

/**
 * The most elements an arena may hold: it is bound whole (its fill and copies, packed AdamW), so it
 * must fit one storage binding (the device's `maxStorageBufferBindingSize`, 128 MiB by default),
 * rounded down to the alignment.
 */
export function arenaCapacity(): number {
  const align = arenaAlignment();
  const bytes = runtime().gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  return Math.floor(bytes / 4 / align) * align;
}

/** Where each tensor of an arena starts, and the arena's length, in elements. */
export interface ArenaLayout {
  /** First element of each tensor, in the order given. */
  offsets: number[];
  /** Sizes of the tensors, in the order given. */
  sizes: number[];
  /** Elements of the whole arena (the last tensor rounded up to the alignment). */
  length: number;
}

/** The packed layout of tensors of `sizes` elements: each starts at a multiple of `align`. */
export function arenaLayout(sizes: readonly number[], align = arenaAlignment()): ArenaLayout {
  const offsets: number[] = [];
  let at = 0;
  for (const n of sizes) {
    offsets.push(at);
    at += Math.ceil(Math.max(n, 1) / align) * align;
  }
  return { offsets, sizes: [...sizes], length: Math.max(at, align) };
}

/**
 * Copies `tensors` into one new arena and returns its views, in order (same shapes and dtype,
 * contiguous, each at an aligned offset; padding between them is zero). The inputs are left as
 * they are; the arena is released when the last view is disposed. Throws when the arena would
 * exceed {@link arenaCapacity}.
 *
 * @example
 * ```ts
 * const [w1, w2] = packTensors([randn([64, 32], { seed: 1 }), ones([32])]);
 * ```
 */
export function packTensors(tensors: readonly Tensor[], op = "packed"): Tensor[] {
  if (tensors.length === 0) return [];
  const dtype = tensors[0].dtype;
  for (const t of tensors) {
    t.expectDtype("packTensors", dtype);
  }
  const layout = arenaLayout(tensors.map((t) => t.size));
  if (layout.length > arenaCapacity()) {
    // WebGPU would reject every batch binding it (the fill and copies below first)
    throw new RangeError(
      `packTensors: ${tensors.length} tensors need an arena of ${layout.length * 4} bytes, over ` +
        `this device's maxStorageBufferBindingSize of ${arenaCapacity() * 4}; pack fewer at once`,
    );
  }
  const rt = runtime();
  const storage = new Storage(rt, layout.length);
  // Tensor's constructor is the low-level way to make a view of a given storage and offset.
  const views = tensors.map((t, i) =>
    new Tensor(storage, t.shape, dtype, op, undefined, layout.offsets[i])
  );
  const whole = new Tensor(storage, [layout.length], dtype, "arena");
  try {
    fillInPlace(whole, 0); // the padding, so that sums over the whole arena see only the tensors
    tensors.forEach((t, i) => copyInto(t, views[i]));
  } finally {
    whole.dispose();
  }
  return views;
}

/**
 * The layout of `tensors` when they are contiguous views of one storage at offsets that are
 * multiples of {@link arenaAlignment} and do not overlap (as {@link packTensors} makes them), else
 * null with the reason.
 */
export function sharedArena(
  tensors: readonly Tensor[],
): { storage: Storage; layout: ArenaLayout } | { why: string } {
  if (tensors.length === 0) return { why: "no tensors" };
  const storage = tensors[0].storage;
  const align = arenaAlignment();
  for (const t of tensors) {
    if (t.storage !== storage) return { why: `${t.describe()} has its own buffer` };
    if (!t.isContiguous || t.offset % align !== 0) {
      return { why: `${t.describe()} is not a contiguous view at an aligned offset` };
    }
  }
  const order = tensors.map((_, i) => i).sort((a, b) => tensors[a].offset - tensors[b].offset);
  for (let j = 1; j < order.length; j++) {
    const prev = tensors[order[j - 1]], next = tensors[order[j]];
    if (prev.offset + prev.size > next.offset) {
      return {
        why: `${prev.describe()} ${fmtShape(prev.shape)} overlaps ${next.describe()}`,
      };
    }
  }
  return {
    storage,
    layout: {
      offsets: tensors.map((t) => t.offset),
      sizes: tensors.map((t) => t.size),
      length: storage.length,
    },
  };
}
