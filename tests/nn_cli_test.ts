import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";

async function quietly<T>(fn: () => Promise<T>): Promise<{ value: T; out: string; err: string }> {
  const log = console.log, error = console.error;
  let out = "", err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { value: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("jackpot pretrain refuses bad options with exit code 2 and one sentence", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--model", "huge"], /--model: unknown model size 'huge'/],
    [["--model", "tiny:kvHeads=3"], /kvHeads \(3\) must divide heads \(4\)/],
    [["--task", "nosuchtask"], /--task: /],
    [["--lr", "0"], /--lr must be > 0/],
    [["--steps", "1.5"], /--steps must be an integer/],
  ];
  for (const [args, re] of cases) {
    const { value, err } = await quietly(() => runCli(["pretrain", ...args]));
    assert.equal(value, 2, args.join(" "));
    assert.match(err, re);
  }
});

Deno.test("jackpot sample prints completions and writes every token's log-probs as JSON", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  const task = "arithmetic:maxDigits=1,ops=+";
  const model = Transformer.init(modelConfig("tiny", 18), { seed: 4, std: 0.2 });
  await saveCheckpoint(`${dir}/ckpt`, await model.toCheckpoint({ task, step: 0 }));
  model.dispose();
  const { value, out } = await quietly(() =>
    runCli([
      "sample",
      "--checkpoint",
      `${dir}/ckpt`,
      "--n",
      "3",
      "--capture-k",
      "2",
      "--json",
      `${dir}/r.json`,
    ])
  );
  assert.equal(value, 0);
  assert.match(out, /Mean reward/);
  const json = JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
  assert.equal(json.rows.length, 3);
  for (const r of json.rows) {
    assert.equal(r.logProbs.length, r.completion.length);
    assert.equal(r.rawLogProbs.length, r.completion.length);
    assert.equal(r.topIds.length, 2 * r.completion.length);
    for (const lp of r.logProbs) assert.ok(lp <= 0);
  }
  const missing = await quietly(() => runCli(["sample", "--checkpoint", `${dir}/nothing`]));
  assert.equal(missing.value, 2);
  assert.match(missing.err, /nothing\/config.json/);
  await Deno.remove(dir, { recursive: true });
});
