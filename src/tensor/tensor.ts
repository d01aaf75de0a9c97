/**
 * The Tensor: a typed view (shape, strides, element offset) of a pooled GPU buffer.
 *
 * Views share their storage through a reference count; the buffer returns to the pool when the last
 * tensor using it is disposed. Which views are free: `reshape` of a contiguous tensor, `detach`,
 * `transpose`/`permute`/`slice`/`expand` (metadata only). Kernels read contiguous inputs at offset 0,
 * so a strided view is materialised by one strided-copy dispatch when an op first needs it
 * (matmul instead reads a transposed 2-D view directly through its trans flags).
 *
 * @module
 */
import type { BufferSlice } from "../gpu/mod.ts";
import type { TensorRuntime } from "./runtime.ts";
import { contiguousStrides, fmtShape, sizeOf } from "./shape.ts";
import { track } from "./scope.ts";

/** Element types: f32 values, i32/u32 ids and masks. All are 4 bytes. */
export type DType = "f32" | "i32" | "u32";

/** Host array type of a dtype. */
export type HostArray<D extends DType = DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** A node of the autograd tape: the op that made a tensor, its inputs and how to push a gradient back. */
export interface GradNode {
  /** Op name (error messages and debugging). */
  op: string;
  /** Inputs of the op, in the order `backward` returns their gradients. */
  parents: Tensor[];
  /** Gradients of the parents given the gradient of the output (`null` where none flows). */
  backward(grad: Tensor): (Tensor | null)[];
}

/** A reference-counted buffer shared by a tensor and its views. */
export class Storage {
  /** The runtime that owns the buffer. */
  readonly rt: TensorRuntime;
  /** Number of elements allocated. */
  readonly length: number;
  #buffer: GPUBuffer | null;
  #refs = 0;

  /** Acquires a pooled buffer for `length` 4-byte elements. */
  constructor(rt: TensorRuntime, length: number) {
    this.rt = rt;
    this.length = length;
    this.#buffer = rt.pool.acquire(length * 4);
  }

  /** The buffer; null once released. */
  get buffer(): GPUBuffer | null {
    return this.#buffer;
  }

  /** Adds a reference. */
  retain(): void {
    this.#refs++;
  }

  /** Drops a reference; the last one returns the buffer to the pool. */
  releaseRef(): void {
    if (--this.#refs === 0 && this.#buffer) {
      this.rt.pool.release(this.#buffer);
      this.#buffer = null;
    }
  }
}

let nextId = 1;

/**
 * A GPU tensor. Create with the functions of creation.ts; ops live in src/autograd and are also
 * available as methods (`x.add(y)`, `x.matmul(w)`, `loss.backward()`) once src/autograd/mod.ts is
 * imported.
 */
export class Tensor {
  /** Unique id (stable sort key for the tape). */
  readonly id: number = nextId++;
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Element strides of each dimension. */
  readonly strides: readonly number[];
  /** Element offset of the first element in the storage. */
  readonly offset: number;
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** The shared storage. */
  readonly storage: Storage;
  /** Name of the op that produced it ("input", "randn", "add", ...), used in error messages. */
  readonly op: string;
  /**
   * For i32/u32 tensors made from host arrays: the values, so that ops taking ids (cross-entropy,
   * embedding, gather) can reject an out-of-range id with an error instead of a NaN.
   */
  hostValues: Int32Array | Uint32Array | null = null;
  /** Gradients are tracked for this leaf (parameters). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf with `requiresGrad` after `backward()`. */
  grad: Tensor | null = null;
  /**
   * Where backward puts this leaf's first gradient: an optimizer that keeps gradients in an arena
   * sets it to hand out the (zeroed) view. Null: a new zeroed tensor.
   */
  gradFactory: (() => Tensor) | null = null;
  /** The tape node that produced it, when gradients flow through it. */
  node: GradNode | null = null;
  #disposed = false;
  // Temporaries of the op that made this tensor (see scope.ts opScope), released with it.
  #owned: { dispose(): void }[] | null = null;

  /** Low level: prefer the creation functions. Registers with the current `tidy` scope. */
  constructor(
    storage: Storage,
    shape: readonly number[],
    dtype: DType,
    op: string,
    strides?: readonly number[],
    offset = 0,
  ) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this.op = op;
    storage.retain();
    track(this);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** True when dispose() has run (directly or through a scope). */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /**
   * Row-major, starting at offset 0 or at an offset a binding may start at (a multiple of the
   * device's `minStorageBufferOffsetAlignment`): kernels bind it directly through {@link binding}.
   */
  get isContiguous(): boolean {
    if (!this.isBindableOffset) return false;
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  /** True when a binding can start at this view's first element (offset 0 or aligned). */
  get isBindableOffset(): boolean {
    return this.offset === 0 || (this.offset * 4) % this.storage.rt.storageOffsetAlignment === 0;
  }

  /**
   * The whole GPU buffer, for a kernel that reads this view through its own element offset and
   * strides (the strided copy, the strided binary and reduction kernels). Throws after release.
   */
  get storageBuffer(): GPUBuffer {
    const b = this.storage.buffer;
    if (this.#disposed || !b) throw new Error(`${this.describe()} was used after release`);
    return b;
  }

  /**
   * The GPU buffer of a view that starts at offset 0 (kernels index it from element 0). A view at
   * another offset throws, naming itself: bind {@link binding} instead, or pass
   * {@link storageBuffer} with the offset to a kernel that takes one.
   */
  get buffer(): GPUBuffer {
    const b = this.storageBuffer;
    if (this.offset !== 0) {
      throw new Error(
        `${this.describe()} starts at element ${this.offset} of its buffer; bind it as a slice`,
      );
    }
    return b;
  }

  /**
   * What a kernel binds to read this view from its element 0: the whole buffer at offset 0 when
   * it fits one storage binding, else the slice over the view's elements (the offset must be bindable, see
   * {@link isBindableOffset}; {@link isContiguous} views always are), rounded up to whole 16-byte
   * groups within the buffer: vec4 kernels read whole groups of four, and a view ending on an odd
   * size would otherwise leave its last group out of the binding (a binding under 16 bytes is even
   * rejected). A view spanning more than one binding (`maxStorageBufferBindingSize`) is a
   * RangeError naming it.
   */
  get binding(): GPUBuffer | BufferSlice {
    const b = this.storageBuffer;
    const limit = this.storage.rt.storageBindingLimit;
    if (this.offset === 0 && b.size <= limit) return b;
    if (!this.isBindableOffset) {
      throw new Error(
        `${this.describe()} starts at element ${this.offset}, which no binding can start at; ` +
          `materialise it first`,
      );
    }
    // The view's own extent, rounded up to whole vec4 groups (vec4 kernels read the last group
    // whole) and clamped to the buffer: binding the rest of a large buffer could pass the device's
    // maxStorageBufferBindingSize for a small view.
    let extent = 1;
    for (let i = 0; i < this.shape.length; i++) extent += (this.shape[i] - 1) * this.strides[i];
    const start = this.offset * 4;
    const size = Math.min(b.size - start, Math.ceil((Math.max(extent, 1) * 4) / 16) * 16);
    if (size > limit) {
      // Refused here, naming the tensor, rather than by WebGPU when the batch is submitted.
      throw new RangeError(
        `${this.describe()} spans ${size.toLocaleString("en-US")} bytes, more than one storage ` +
          `binding on this adapter (maxStorageBufferBindingSize ` +
          `${limit.toLocaleString("en-US")}); tensors larger than one binding are not ` +
          `supported: use fewer rows per call`,
      );
    }
    return { buffer: b, offset: start, size };
  }

  /**
   * What a kernel that reads (or writes) this view through its own element offset and strides
   * binds ({@link storageBuffer} and {@link offset}, as the strided copy takes them): the whole
   * buffer when it fits one storage binding, as before; else the slice from the bindable offset at
   * or before the view's first element over the view's extent, with `offset` counted from the
   * slice's start (a view of a buffer larger than one binding, e.g. rows of a 151,936-row
   * embedding). A view whose extent itself spans more than one binding is a RangeError naming it.
   */
  get stridedBinding(): { binding: GPUBuffer | BufferSlice; offset: number } {
    const b = this.storageBuffer;
    const limit = this.storage.rt.storageBindingLimit;
    if (b.size <= limit) return { binding: b, offset: this.offset };
    let extent = 1;
    for (let i = 0; i < this.shape.length; i++) extent += (this.shape[i] - 1) * this.strides[i];
    const align = this.storage.rt.storageOffsetAlignment;
    const start = Math.floor((this.offset * 4) / align) * align;
    const size = Math.min(
      b.size - start,
      Math.ceil((this.offset * 4 - start + extent * 4) / 16) * 16,
    );
    if (size > limit) {
      throw new RangeError(
        `${this.describe()} spans ${size.toLocaleString("en-US")} bytes, more than one storage ` +
          `binding on this adapter (${limit.toLocaleString("en-US")}); tensors larger than one ` +
          `binding are not supported here`,
      );
    }
    return { binding: { buffer: b, offset: start, size }, offset: this.offset - start / 4 };
  }

  /** "Tensor f32 [2,3] (from add)" for error messages. */
  describe(): string {
    return `Tensor ${this.dtype} ${fmtShape(this.shape)} (from ${this.op})`;
  }

  /** Throws unless the dtype is one of `allowed`; names the op. */
  expectDtype(op: string, ...allowed: DType[]): this {
    if (!allowed.includes(this.dtype)) {
      throw new TypeError(
        `${op}: expected a ${allowed.join(" or ")} tensor, got ${this.describe()}`,
      );
    }
    if (this.#disposed) throw new Error(`${op}: ${this.describe()} was used after release`);
    return this;
  }

  /**
   * Throws a RangeError naming `op` when host-known ids fall outside [0, limit) (except `ignore`).
   * Ids computed on the GPU are not checked here; the kernels turn them into NaN.
   */
  checkIds(op: string, limit: number, ignore?: number): void {
    const ids = this.hostValues;
    if (!ids) return;
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (v !== ignore && !(v >= 0 && v < limit)) {
        throw new RangeError(`${op}: id ${v} at position ${i} is outside [0, ${limit})`);
      }
    }
  }

  /** Releases this tensor's reference to its storage (idempotent). Its gradient is disposed too. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // The tape node stays: a backward through this tensor must still reach its inputs, and fails
    // with a clear error if its closure needs a released tensor (never a silently cut graph).
    this.grad?.dispose();
    this.grad = null;
    this.storage.releaseRef();
    const owned = this.#owned;
    this.#owned = null;
    if (owned) { for (const t of owned) t.dispose(); }
  }

  /** Releases `ts` together with this tensor (the temporaries of the op that made it). */
  adopt(ts: { dispose(): void }[]): void {
    if (ts.length === 0) return;
    if (this.#disposed) {
      for (const t of ts) t.dispose();
      return;
    }
    (this.#owned ??= []).push(...ts);
  }

  /** A metadata-only view over the same storage (no gradient; autograd wraps it). */
  viewAs(shape: readonly number[], strides: readonly number[], offset: number, op: string): Tensor {
    if (this.#disposed) throw new Error(`${op}: ${this.describe()} was used after release`);
    return new Tensor(this.storage, shape, this.dtype, op, strides, offset);
  }
}
