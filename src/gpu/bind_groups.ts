/**
 * Bind groups cached by their exact resources.
 *
 * `createBindGroup` is the dominant host cost of a dispatch: ~8 µs each on the CPU adapter, against
 * ~0.3 µs for setPipeline + setBindGroup + dispatch together (`deno task bench --suite dispatch`
 * shows the whole encode + submit per dispatch with and without the cache). A training step or a decode step replays the same dispatch sequence every time: the buffer pool
 * hands out the same buffers in the same order and the uniform arena packs the parameter blocks at
 * the same offsets (their contents are rewritten, not their places). So a bind group keyed by
 * (pipeline, buffer, offset, size of each binding) is found again on every later step, and a
 * steady-state loop creates none.
 *
 * A cached bind group holds its buffers: a buffer that is dropped without `destroy()` keeps its
 * GPU memory until the cache is emptied (the pool, the arenas and every library path destroy
 * theirs; code that binds its own short-lived buffers should destroy them, or call `clear()`).
 *
 * @module
 */

/** Counters of a {@link BindGroupCache}. */
export interface BindGroupCacheStats {
  /** Lookups that found a bind group. */
  hits: number;
  /** Lookups that created one. */
  misses: number;
  /** Bind groups held now. */
  size: number;
}

/**
 * A bounded cache of bind groups of one device. Keys use an id per GPU object, never reused, so a
 * bind group of a destroyed buffer can never be returned for a live one; when the cache passes its
 * bound it is emptied (a loop's working set is refilled within one step).
 */
export class BindGroupCache {
  #device: GPUDevice;
  #max: number;
  #groups = new Map<string, GPUBindGroup>();
  #hits = 0;
  #misses = 0;

  /** @param device the device; @param maxEntries bound on the bind groups held (default 65,536). */
  constructor(device: GPUDevice, maxEntries = 65536) {
    this.#device = device;
    this.#max = maxEntries;
  }

  /** Hits, misses and size so far. */
  get stats(): BindGroupCacheStats {
    return { hits: this.#hits, misses: this.#misses, size: this.#groups.size };
  }

  /** Drops every cached bind group (and with them the buffers only they still held). */
  clear(): void {
    this.#groups.clear();
  }

  /**
   * The bind group of group 0 of `pipeline` with `entries` (buffer bindings only), created on the
   * first request.
   */
  get(pipeline: GPUComputePipeline, entries: GPUBindGroupEntry[]): GPUBindGroup {
    // Plain concatenation and ids stored on the objects: this runs once per dispatch, and a
    // WeakMap lookup plus a template literal per binding cost more than the rest of the encoding.
    let key = "" + idOf(pipeline);
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding;
      key += "|" + e.binding + ":" + idOf(r.buffer) + ":" + (r.offset ?? 0) + ":" + (r.size ?? "");
    }
    let group = this.#groups.get(key);
    if (group) {
      this.#hits++;
      return group;
    }
    this.#misses++;
    if (this.#groups.size >= this.#max) this.#groups.clear();
    group = this.#device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    this.#groups.set(key, group);
    return group;
  }
}

const caches = new WeakMap<GPUDevice, BindGroupCache>();

// A process-wide id per GPU object, kept on the object itself under a symbol (never reused).
const ID = Symbol("jackpot.bindGroupCacheId");
let nextId = 1;
function idOf(o: object): number {
  const tagged = o as { [ID]?: number };
  return tagged[ID] ??= nextId++;
}

/** The bind group cache of `device` (one per device, created on first use). */
export function bindGroupCache(device: GPUDevice): BindGroupCache {
  let cache = caches.get(device);
  if (!cache) {
    cache = new BindGroupCache(device);
    caches.set(device, cache);
  }
  return cache;
}
