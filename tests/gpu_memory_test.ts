// The GPU memory ledger: every buffer jackpot creates is counted until destroyed, the peak is kept,
// and a training loop's footprint can be read from it.
import assert from "node:assert/strict";
import {
  createStorageBuffer,
  createTrackedBuffer,
  getGpu,
  gpuMemory,
  readBuffers,
  resetGpuMemoryPeak,
  uploadBuffer,
} from "../src/gpu/mod.ts";
import { Rng } from "../src/util/rng.ts";

const gpu = await getGpu();

Deno.test("gpu memory: the ledger follows random creates and destroys, double destroys included", () => {
  const rng = new Rng(11);
  const start = gpuMemory(gpu.device);
  resetGpuMemoryPeak(gpu.device);
  // Reference: a plain map of what is alive, and the running peak.
  const alive = new Map<GPUBuffer, number>();
  let live = 0, peak = 0;
  for (let op = 0; op < 400; op++) {
    if (alive.size === 0 || rng.uniform() < 0.55) {
      const bytes = 1 + rng.int(5000);
      const b = rng.uniform() < 0.5
        ? createStorageBuffer(gpu, bytes, "ledger test")
        : createTrackedBuffer(gpu.device, {
          size: 4 * (1 + rng.int(1000)),
          usage: GPUBufferUsage.STORAGE,
        });
      alive.set(b, b.size);
      live += b.size;
      peak = Math.max(peak, live);
    } else {
      const list = [...alive.keys()];
      const b = list[rng.int(list.length)];
      b.destroy();
      if (rng.uniform() < 0.3) b.destroy(); // a second destroy must not count twice
      live -= alive.get(b)!;
      alive.delete(b);
    }
    const now = gpuMemory(gpu.device);
    assert.equal(now.liveBytes - start.liveBytes, live, `op ${op}: live bytes`);
    assert.equal(now.liveBuffers - start.liveBuffers, alive.size, `op ${op}: live buffers`);
    assert.equal(now.peakBytes - start.liveBytes, peak, `op ${op}: peak`);
  }
  for (const b of alive.keys()) b.destroy();
  const end = gpuMemory(gpu.device);
  assert.equal(end.liveBytes, start.liveBytes);
  assert.ok(end.createdBuffers > start.createdBuffers);
  resetGpuMemoryPeak(gpu.device);
  assert.equal(
    gpuMemory(gpu.device).peakBytes,
    start.liveBytes,
    "reset: the peak is the live bytes",
  );
});

Deno.test("gpu memory: sizes are the buffers' real sizes, and a readback leaves nothing behind", async () => {
  const before = gpuMemory(gpu.device);
  const b = createStorageBuffer(gpu, 5, "five bytes");
  assert.equal(b.size, 8);
  assert.equal(gpuMemory(gpu.device).liveBytes - before.liveBytes, 8, "rounded size counted");
  const x = uploadBuffer(gpu, new Float32Array([1, 2, 3]), "x");
  resetGpuMemoryPeak(gpu.device);
  const [read] = await readBuffers(gpu, [{ buffer: x }, { buffer: b }]);
  assert.deepEqual([...new Float32Array(read)], [1, 2, 3]);
  const after = gpuMemory(gpu.device);
  assert.equal(after.liveBytes - before.liveBytes, 8 + 12, "staging buffers destroyed");
  assert.ok(after.peakBytes >= after.liveBytes + 12 + 8, "the staging showed in the peak");
  b.destroy();
  x.destroy();
  assert.equal(gpuMemory(gpu.device).liveBytes, before.liveBytes);
});
