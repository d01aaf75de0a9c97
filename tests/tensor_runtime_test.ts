// recordInto hands a caller's batch to the ops: the work must land in that batch, nothing may be
// submitted behind the caller's back, and what would need a submit is a clear error.
import assert from "node:assert/strict";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { initTensors, read, tensor, tidy } from "../src/tensor/mod.ts";
import { ops } from "../src/autograd/mod.ts";

const rt = await initTensors();

Deno.test("recordInto records into the caller's batch, which alone submits it", async () => {
  const a = tensor([1, 2, 3, 4], [4]);
  const b = tensor([10, 20, 30, 40], [4]);
  rt.flush(); // uploads above are on the queue; nothing is open
  const submitsBefore = rt.counters.submits;
  const batch = new ComputeBatch(rt.gpu);
  const sum = rt.recordInto(batch, () => ops.add(a, b));
  assert.ok(batch.length > 0, "the op's dispatches went into the caller's batch");
  assert.equal(rt.counters.submits, submitsBefore, "nothing submitted during recordInto");
  batch.submit();
  assert.deepEqual([...await read(sum)], [11, 22, 33, 44]);
  for (const t of [a, b, sum]) t.dispose();
});

Deno.test("a readback or upload inside recordInto is an error, and the caller's batch survives", async () => {
  const a = tensor([1, 2], [2]);
  rt.flush();
  const batch = new ComputeBatch(rt.gpu);
  assert.throws(
    () => rt.recordInto(batch, () => tensor([5, 6], [2])),
    /recordInto: .* cannot be read back, uploaded to or flushed/,
  );
  await assert.rejects(
    rt.recordInto(batch, () => read(ops.mul(a, 2))),
    /recordInto/,
  );
  // The caller's batch was not submitted behind its back: submitting it now is still allowed.
  batch.submit();
  // And the runtime works normally afterwards.
  const doubled = tidy(() => ops.mul(a, 3));
  assert.deepEqual([...await read(doubled)], [3, 6]);
  a.dispose();
  doubled.dispose();
});

Deno.test("more than MAX_BATCH dispatches inside recordInto stay in the caller's batch", async () => {
  const x = tensor([1], [1]);
  rt.flush();
  const submitsBefore = rt.counters.submits;
  const batch = new ComputeBatch(rt.gpu);
  let y = x;
  rt.recordInto(batch, () => {
    for (let i = 0; i < 8200; i++) {
      const next = ops.add(y, 1);
      if (y !== x) y.dispose();
      y = next;
    }
  });
  assert.equal(rt.counters.submits, submitsBefore);
  assert.ok(batch.length >= 8200);
  batch.submit();
  assert.deepEqual([...await read(y)], [8201]);
  x.dispose();
  y.dispose();
});
