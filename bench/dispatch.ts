/**
 * Host cost of one dispatch: what encoding and submitting a batch costs in JavaScript per
 * dispatch, with every bind group created afresh (new buffers each round) and with every bind group
 * found in the cache (the same buffers again, as a training or decode loop binds them). A small
 * model's training step is ~500–1,300 dispatches, so on a fast GPU this cost, not the GPU, sets the
 * step time; the limit it is compared against is PyTorch's step time at the same shapes.
 *
 * @module
 */
import {
  ComputeBatch,
  copyKernel,
  createStorageBuffer,
  type GpuContext,
  readBuffers,
} from "../src/gpu/mod.ts";
import { median } from "../src/util/stats.ts";

/** Result of {@link benchDispatch}. */
export interface DispatchResult {
  /** Dispatches per batch. */
  dispatches: number;
  /** Median microseconds per dispatch (encode + submit) when every bind group is new. */
  freshUs: number;
  /** Median microseconds per dispatch when every bind group is found in the cache. */
  cachedUs: number;
}

/**
 * Times `submit()` of batches of `dispatches` one-workgroup copies (the GPU work is negligible and
 * runs after submit returns; each round is drained before the next).
 *
 * @example
 * ```ts
 * const r = await benchDispatch(gpu);
 * console.log(`${r.freshUs} µs fresh, ${r.cachedUs} µs cached`);
 * ```
 */
export async function benchDispatch(
  gpu: GpuContext,
  { dispatches = 1000, repeats = 5 }: { dispatches?: number; repeats?: number } = {},
): Promise<DispatchResult> {
  const distinct = 64; // buffers cycled through, as an activation pool would
  const makeBuffers = () =>
    Array.from({ length: distinct }, () => createStorageBuffer(gpu, 1024, "bench dispatch"));
  const params = new Uint32Array([64, 0, 0, 0]); // 64 vec4 = the 1 KiB buffer
  const round = async (buffers: GPUBuffer[]) => {
    const batch = new ComputeBatch(gpu);
    for (let i = 0; i < dispatches; i++) {
      batch.dispatch({
        kernel: copyKernel,
        bindings: [buffers[i % distinct], buffers[(i + 1) % distinct], params],
        workgroups: [1],
      });
    }
    const t0 = performance.now();
    batch.submit();
    const ms = performance.now() - t0;
    await readBuffers(gpu, [{ buffer: buffers[0], size: 4 }]); // drain before the next round
    return (ms * 1000) / dispatches;
  };
  const fresh: number[] = [];
  const cached: number[] = [];
  const reused = makeBuffers();
  await round(reused); // pipelines compiled, bind groups of `reused` cached
  for (let r = 0; r < repeats; r++) {
    const buffers = makeBuffers();
    fresh.push(await round(buffers));
    buffers.forEach((b) => b.destroy());
    cached.push(await round(reused));
  }
  reused.forEach((b) => b.destroy());
  return { dispatches, freshUs: median(fresh), cachedUs: median(cached) };
}
