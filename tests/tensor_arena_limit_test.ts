// An arena is bound whole (its fill, its copies, packed AdamW), so it must fit one storage binding
// (maxStorageBufferBindingSize, 128 MiB by default): packTensors says so instead of recording
// batches WebGPU rejects, and a Transformer whose parameters do not fit keeps them separate
// (each parameter alone fits, as before packing).
import assert from "node:assert/strict";
import {
  arenaAlignment,
  arenaCapacity,
  arenaLayout,
  packTensors,
  readAll,
  tensor,
  tidy,
  zeros,
} from "../src/tensor/mod.ts";
import { AdamW, ops } from "../src/autograd/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { assertNoGpuErrors, setup } from "./autograd_util.ts";

Deno.test("packTensors refuses an arena over the device's storage binding size, naming it", async () => {
  const rt = await setup();
  const cap = arenaCapacity();
  const align = arenaAlignment();
  assert.equal(cap, Math.floor(rt.gpu.limits.maxStorageBufferBindingSize / 4 / align) * align);
  const half = Math.ceil(cap / 2) + 64; // each fits alone, the two together do not
  const ts = [zeros([half]), zeros([half])];
  assert.ok(arenaLayout(ts.map((t) => t.size)).length > cap);
  assert.throws(() => packTensors(ts), /maxStorageBufferBindingSize/);
  ts.forEach((t) => t.dispose());
  assertNoGpuErrors();
});

Deno.test("a Transformer over one binding's size keeps separate parameters and trains", async () => {
  const rt = await setup();
  const limit = rt.gpu.limits.maxStorageBufferBindingSize;
  // ~41M parameters (164 MB at 4 bytes) when the limit is 128 MiB; each matrix is 16.8 MB
  const layers = Math.ceil(limit / 4 / 13_000_000);
  const cfg = modelConfig("policy", 64, { hidden: 512, intermediate: 8192, layers });
  const model = Transformer.init(cfg, { seed: 1 });
  const total = model.parameters().reduce((s, p) => s + p.size, 0);
  assert.ok(total * 4 > limit, "the model is larger than one binding");
  const toks = tensor(new Int32Array([1, 2, 3]), [1, 3]);
  const tgt = tensor(new Int32Array([2, 3, 4]), [1, 3]);
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  assert.ok(!opt.packed);
  const loss = tidy(() => {
    const l = model.loss(toks, tgt);
    l.backward();
    opt.step();
    return l;
  });
  const after = tidy(() => model.loss(toks, tgt));
  const [l0, l1, norm] = await readAll([loss, after, opt.gradNorm]);
  assertNoGpuErrors();
  assert.ok(Number.isFinite(l0[0]) && norm[0] > 0 && Number.isFinite(norm[0]), `${l0}, ${norm}`);
  assert.ok(l1[0] < l0[0], `one AdamW step on the batch lowers its loss: ${l0[0]} -> ${l1[0]}`);
  for (const t of [loss, after, toks, tgt]) t.dispose();
  opt.dispose();
  model.dispose();
});

Deno.test("a tensor over one storage binding is refused where it is bound, naming it; a small view of it binds", async () => {
  const rt = await setup();
  const limit = rt.gpu.limits.maxStorageBufferBindingSize;
  if (limit > 512 * 2 ** 20) {
    console.log(`skipped: this device binds ${limit} bytes; the test needs a small limit`);
    return;
  }
  const rows = Math.floor(limit / 4 / 1024);
  // Exactly one binding fits; one row more does not (refused before any GPU work or batch error).
  // Creating it works (fills bind in blocks: src/tensor/blocks.ts); an op that binds it whole
  // refuses it.
  zeros([rows, 1024]).dispose();
  const over = zeros([rows + 1, 1024]);
  assert.throws(
    () => tidy(() => ops.affine(over, 1, 1)),
    (e: Error) =>
      e instanceof RangeError &&
      e.message.startsWith(`Tensor f32 [${rows + 1},1024] (from full) spans `) &&
      e.message.includes(`${((rows + 1) * 1024 * 4).toLocaleString("en-US")} bytes`) &&
      /more than one storage binding .*maxStorageBufferBindingSize/.test(e.message),
  );
  over.dispose();
  // An upload binds nothing: its first rows (a view at offset 0, in a buffer over the limit)
  // are bound as a slice; the whole of it is refused by the op that binds it.
  const big = tensor(new Float32Array((rows + 1) * 1024).fill(2), [rows + 1, 1024]);
  const head = ops.slice(big, 0, 0, 2);
  const [got] = await readAll([tidy(() => ops.affine(head, 1, 1))]);
  assert.ok(got.length === 2048 && got.every((v) => v === 3));
  assert.throws(
    () => tidy(() => ops.affine(big, 1, 1)),
    /\(from input\) spans .*more than one storage binding/,
  );
  head.dispose();
  big.dispose();
  assertNoGpuErrors();
});
