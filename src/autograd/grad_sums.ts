/**
 * Gradient sums deferred to the end of a backward pass. A weight whose gradient a kernel computes
 * as per-block partial rows (an RMSNorm's [blocks, C] partials; a split-K weight gradient's
 * [splits, M·N] products) used to cost a reduction dispatch per weight per step: 17 of the 0.8M
 * anchor's 161 dispatches were norm column sums and 18 split-K reductions. Here those partials are
 * written into one arena that lives across steps, each with its destination `.grad` noted, and
 * {@link endGradSums} sums them all with one dispatch (kernels/grad_sums.wgsl) before `backward`
 * returns, so a `.grad` is complete whenever user code can see it.
 *
 * The arena grows to what a pass asked for (chunks of at most one storage binding, at most
 * {@link GRAD_SUMS_MAX_BYTES} in all; beyond that a weight falls back to its own reduction) and is
 * then reused: after the first step no memory is allocated.
 *
 * @module
 */
import sumsSource from "../../kernels/grad_sums.wgsl" with { type: "text" };
import { type BufferSlice, grid, type Kernel } from "../gpu/mod.ts";
import { arenaAlignment, arenaCapacity, keep, runtime, Storage, Tensor } from "../tensor/mod.ts";
import type { TensorRuntime } from "../tensor/mod.ts";

const sumsKernel: Kernel = { name: "grad_sums", code: sumsSource };

/** Most bytes of partials the arena holds (a larger pass reduces the rest weight by weight). */
export const GRAD_SUMS_MAX_BYTES = 256 * 2 ** 20;

/**
 * Largest split-K partials (all splits of one weight gradient, bytes) that are deferred by
 * default. A split product reduced at once reads its partials back from the shared scratch while
 * they are in L2 (50 MB on an H100); deferred, they make a round trip to memory, 2 × 4 MiB ≈ 2.8 µs
 * at 3 TB/s against the ~11.5 µs a dispatch costs there. Larger ones (the 128×128-tile kernel's
 * 256 tiles of partials are 16 MiB) would spend about what the dispatch saves.
 */
export const GRAD_SUMS_SPLIT_MAX_BYTES = 4 * 2 ** 20;

// kernels/grad_sums.wgsl: table length and columns per workgroup
const MAX_SEG = 256;
const STRIP = 64;

interface Segment {
  /** First float of the partials in the chunk. */
  src: number;
  blocks: number;
  cols: number;
  /** Where they are summed into: `cols` contiguous floats of this storage from `offset`. */
  storage: Storage;
  offset: number;
}

interface Chunk {
  /** Holds the chunk's storage for as long as the arena keeps it. */
  whole: Tensor;
  used: number;
  segments: Segment[];
}

interface Arena {
  chunks: Chunk[];
  /** Floats the largest pass so far asked for: the next pass allocates that at once. */
  wanted: number;
  /** Floats asked for by the current pass. */
  asked: number;
  /** Nesting depth of passes (a backward inside a backward closure nests in the outer pass). */
  depth: number;
  /**
   * Per nested pass (innermost last): how many segments each chunk held when it began. Its own
   * segments are the ones after, summed at its end so that the closure that ran it sees complete
   * gradients; the outer pass's stay for the outer end.
   */
  marks: number[][];
}

const arenas = new WeakMap<TensorRuntime, Arena>();
const deferredParts = new WeakSet<Tensor>();
let enabled = true;
let splitMaxBytes = GRAD_SUMS_SPLIT_MAX_BYTES;

/**
 * Turns deferred gradient sums on (the default) or off (each weight then reduces its own partials
 * at once, as before), and sets the largest split-K partials deferred (default
 * {@link GRAD_SUMS_SPLIT_MAX_BYTES}; 0 defers none): for A/B benchmarks and tests.
 */
export function setDeferredGradSums(on: boolean, opts: { splitMaxBytes?: number } = {}): void {
  enabled = on;
  splitMaxBytes = opts.splitMaxBytes ?? GRAD_SUMS_SPLIT_MAX_BYTES;
}

/** Whether backward passes defer weight gradients' partial sums (see {@link setDeferredGradSums}). */
export function deferredGradSumsEnabled(): boolean {
  return enabled;
}

/** The deferred-sums arena of the current runtime: chunks, bytes held, bytes the largest pass asked for. */
export function gradSumsStats(): { chunks: number; bytes: number; wantedBytes: number } {
  const a = arenaOf(runtime());
  return { chunks: a.chunks.length, bytes: 4 * capacityOf(a), wantedBytes: 4 * a.wanted };
}

function arenaOf(rt: TensorRuntime): Arena {
  let a = arenas.get(rt);
  if (!a) {
    a = { chunks: [], wanted: 0, asked: 0, depth: 0, marks: [] };
    arenas.set(rt, a);
  }
  return a;
}

function newChunk(rt: TensorRuntime, floats: number): Chunk {
  const storage = new Storage(rt, floats);
  // kept by the arena, not by whichever scope the pass runs in
  const whole = keep(new Tensor(storage, [floats], "f32", "grad partials arena"));
  return { whole, used: 0, segments: [] };
}

function capacityOf(a: Arena): number {
  return a.chunks.reduce((n, c) => n + c.whole.size, 0);
}

/**
 * Starts a pass (called by `backward`): partials asked for until the matching {@link endGradSums}
 * are summed at its end. When the last passes asked for more than the arena holds, or left it in
 * several chunks that one would hold, it is rebuilt at the size they asked for (chunks of at most
 * one binding, {@link GRAD_SUMS_MAX_BYTES} in all), so a steady run uses one chunk (one dispatch)
 * and allocates nothing after its first steps.
 */
export function beginGradSums(): void {
  const rt = runtime();
  const a = arenaOf(rt);
  if (a.depth++ > 0) {
    a.marks.push(a.chunks.map((c) => c.segments.length));
    return;
  }
  a.asked = 0;
  const cap = chunkCapacity(rt);
  const target = Math.min(a.wanted, Math.floor(GRAD_SUMS_MAX_BYTES / 4));
  const have = capacityOf(a);
  // (a chunk over `cap`: built before the runtime's binding limit was lowered)
  const over = a.chunks.some((c) => c.whole.size > cap);
  if (over || (target > 0 && (have < target || (a.chunks.length > 1 && target <= cap)))) {
    for (const c of a.chunks) c.whole.dispose();
    a.chunks = [];
    for (let left = target; left > 0; left -= cap) a.chunks.push(newChunk(rt, Math.min(left, cap)));
  }
  for (const c of a.chunks) {
    c.used = 0;
    c.segments = [];
  }
}

/**
 * Ends a pass: with `flush`, records the dispatches that add every deferred partial sum to its
 * `.grad` (one per chunk and destination buffer, usually one in all); without (the pass failed),
 * drops them. A nested pass (a backward run by a backward closure) does so for the partials it
 * deferred itself, so that the closure reads complete gradients.
 */
export function endGradSums(flush: boolean): void {
  const rt = runtime();
  const a = arenaOf(rt);
  if (a.depth === 0) throw new Error("endGradSums: no pass was begun");
  if (--a.depth > 0) {
    // a nested pass: its own segments (the partials it wrote stay reserved until the outer end)
    const mark = a.marks.pop() ?? [];
    a.chunks.forEach((c, i) => {
      const own = c.segments.splice(mark[i] ?? 0);
      if (flush) sumChunk(rt, c, own);
    });
    return;
  }
  a.marks = [];
  a.wanted = Math.max(a.wanted, a.asked);
  for (const c of a.chunks) {
    if (flush) sumChunk(rt, c, c.segments);
    c.segments = [];
    c.used = 0;
  }
}

// Reserves `floats` (aligned) in the pass's chunks, adding a chunk when none has room; null when
// over the arena's limits.
function reserve(rt: TensorRuntime, a: Arena, floats: number): { chunk: Chunk; at: number } | null {
  const align = arenaAlignment();
  const n = Math.ceil(Math.max(floats, 1) / align) * align;
  const cap = chunkCapacity(rt);
  if (n > cap) return null; // larger than one binding: never deferred, and not worth reserving for
  a.asked += n;
  let chunk = a.chunks.find((c) => c.used + n <= c.whole.size);
  if (!chunk) {
    const left = Math.floor(GRAD_SUMS_MAX_BYTES / 4) - capacityOf(a);
    // chunks double, so a first pass allocates O(log) of them; the next pass takes one
    const last = a.chunks.at(-1)?.whole.size ?? 0;
    const size = Math.min(cap, left, Math.max(n, 2 * last, 1 << 16));
    if (n > size) return null;
    chunk = newChunk(rt, size); // a multiple of the alignment, as n, cap and the chunks are
    a.chunks.push(chunk);
  }
  const at = chunk.used;
  chunk.used += n;
  return { chunk, at };
}

// Floats one chunk may hold: it is bound whole, so at most one storage binding (the runtime's
// limit, which tests lower; arenaCapacity's device limit otherwise), and the arena's maximum.
function chunkCapacity(rt: TensorRuntime): number {
  const align = arenaAlignment();
  const binding = Math.floor(rt.storageBindingLimit / 4 / align) * align;
  return Math.min(arenaCapacity(), binding, Math.floor(GRAD_SUMS_MAX_BYTES / 4));
}

function deferrable(dst: Tensor, cols: number): boolean {
  return enabled && dst.dtype === "f32" && dst.isContiguous && dst.size === cols &&
    !dst.isDisposed;
}

/**
 * For a backward closure: a `[blocks, cols]` f32 tensor for a kernel to write the partial rows of
 * a gradient into, whose column sums are added to `dst` (a weight's contiguous `.grad` of `cols`
 * elements, as `gradSink` gives it) at the end of the pass. Null outside a backward pass, when
 * deferral is off, or when the arena is full: the caller then reduces the partials itself.
 *
 * @example
 * ```ts
 * const parts = deferredPartials(sink.grad, blocks, C) ?? empty([blocks, C], "f32", "grad");
 * ```
 */
export function deferredPartials(dst: Tensor, blocks: number, cols: number): Tensor | null {
  const rt = runtime();
  const a = arenaOf(rt);
  if (a.depth === 0 || !deferrable(dst, cols) || blocks < 1 || cols < 1) return null;
  const r = reserve(rt, a, blocks * cols);
  if (!r) return null;
  // the storage, not the tensor: `dst` may be a view the closure's scope releases before the end
  r.chunk.segments.push({ src: r.at, blocks, cols, storage: dst.storage, offset: dst.offset });
  const t = new Tensor(
    r.chunk.whole.storage,
    [blocks, cols],
    "f32",
    "grad partials",
    undefined,
    r.at,
  );
  deferredParts.add(t);
  return t;
}

/** True for a tensor from {@link deferredPartials}: its sums are already on their way. */
export function isDeferredPartials(t: Tensor): boolean {
  return deferredParts.has(t);
}

/**
 * For a matmul that adds a weight's gradient into `dst` (its `.grad`) by splitting K: where the
 * split products go, so that their sum joins the pass's deferred sums instead of costing a
 * reduction dispatch (see `MatmulParams.splitPartials`). Undefined outside a backward pass or
 * when deferral is off.
 */
export function splitPartialsInto(
  dst: Tensor,
): ((splits: number, elements: number) => BufferSlice | null) | undefined {
  if (arenaOf(runtime()).depth === 0 || !enabled) return undefined;
  return (splits, elements) => {
    if (splits * elements * 4 > splitMaxBytes) return null;
    const t = deferredPartials(dst, splits, elements);
    if (!t) return null;
    const slice = { buffer: t.storageBuffer, offset: t.offset * 4, size: t.size * 4 };
    t.dispose(); // the chunk keeps the storage; the slice is recorded before the pass ends
    return slice;
  };
}

// One dispatch per destination buffer and table of segments.
function sumChunk(rt: TensorRuntime, c: Chunk, segments: Segment[]): void {
  const byBuffer = new Map<Storage, Segment[]>();
  for (const s of segments) {
    const list = byBuffer.get(s.storage) ?? [];
    list.push(s);
    byBuffer.set(s.storage, list);
  }
  const maxBinding = rt.storageBindingLimit;
  const align = rt.storageOffsetAlignment / 4;
  for (const [storage, segs] of byBuffer) {
    const buffer = storage.buffer;
    if (!buffer) continue; // the gradients were released during the pass: nothing to add to
    for (const layer of disjointLayers(segs)) sumLayer(rt, c, layer, buffer, maxBinding, align);
  }
}

// Splits segments into layers whose destinations do not overlap, in order (usually one layer).
// Each workgroup reads, adds and writes its columns of dst, so two segments adding into the same
// floats in one dispatch would race and lose one of the sums: a weight used twice in a forward
// defers two segments with one destination, and qkvNormRope's span over qNorm's and kNorm's
// gradients covers whatever lies between them. Layers are dispatched one after another.
function disjointLayers(segs: Segment[]): Segment[][] {
  const layers: { end: number; segs: Segment[] }[] = [];
  for (const s of [...segs].sort((x, y) => x.offset - y.offset)) {
    let layer = layers.find((l) => l.end <= s.offset);
    if (!layer) layers.push(layer = { end: 0, segs: [] });
    layer.segs.push(s);
    layer.end = s.offset + s.cols;
  }
  return layers.map((l) => l.segs);
}

// One dispatch per group of a layer's segments (sorted by offset, disjoint) that fits a binding.
function sumLayer(
  rt: TensorRuntime,
  c: Chunk,
  segs: Segment[],
  buffer: GPUBuffer,
  maxBinding: number,
  align: number,
): void {
  let group: Segment[] = [];
  let lo = 0, hi = 0;
  const emit = () => {
    if (group.length > 0) dispatchGroup(rt, c, group, buffer, lo, hi);
    group = [];
  };
  for (const s of segs) {
    const sLo = Math.floor(s.offset / align) * align, sHi = s.offset + s.cols;
    const nLo = group.length ? lo : sLo, nHi = Math.max(group.length ? hi : 0, sHi);
    if (group.length && (group.length === MAX_SEG || (nHi - nLo) * 4 > maxBinding)) {
      emit();
      lo = sLo;
      hi = sHi;
    } else {
      lo = nLo;
      hi = nHi;
    }
    group.push(s);
  }
  emit();
}

function dispatchGroup(
  rt: TensorRuntime,
  c: Chunk,
  segs: Segment[],
  buffer: GPUBuffer,
  lo: number,
  hi: number,
): void {
  const table = new Uint32Array(4 + MAX_SEG + 4 * MAX_SEG);
  let strips = 0;
  let aligned4 = true;
  segs.forEach((s, i) => {
    table[4 + i] = strips;
    const dst = s.offset - lo;
    table.set([s.src, s.blocks, s.cols, dst], 4 + MAX_SEG + 4 * i);
    strips += Math.ceil(s.cols / STRIP);
    aligned4 &&= s.src % 4 === 0 && s.cols % 4 === 0 && dst % 4 === 0;
  });
  table[0] = segs.length;
  table[1] = strips;
  const size = Math.min(buffer.size - lo * 4, Math.ceil(((hi - lo) * 4) / 16) * 16);
  const parts = c.whole.binding;
  rt.dispatch({
    kernel: sumsKernel,
    entryPoint: aligned4 ? "sum4" : "sum1",
    bindings: [parts, { buffer, offset: lo * 4, size }, table],
    workgroups: grid(strips, rt.gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535),
  });
}
