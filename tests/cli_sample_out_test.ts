// `jackpot sample --out DIR` writes a run folder like the other commands: a table of completions,
// the whole rollout, and config.json last; it refuses a non-empty folder without --force before
// any GPU work.
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { saveCheckpoint } from "../src/nn/checkpoint/mod.ts";
import { modelConfig } from "../src/nn/config.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { csvToTable, tableRows } from "../src/report/mod.ts";

Deno.test("jackpot sample --out writes completions, the rollout and config.json", async () => {
  await initTensors();
  const dir = await Deno.makeTempDir();
  try {
    const model = Transformer.init(modelConfig("tiny", 18), { seed: 9, std: 0.2 });
    await saveCheckpoint(
      `${dir}/ckpt`,
      await model.toCheckpoint({ task: "arithmetic:maxDigits=1" }),
    );
    model.dispose();
    const args = ["sample", "--checkpoint", `${dir}/ckpt`, "--n", "4", "--out", `${dir}/run`];
    const first = await quietly(() => runCli(args));
    assert.equal(first.value, 0, first.err);
    const names = [];
    for await (const e of Deno.readDir(`${dir}/run`)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "completions.csv",
      "completions.json",
      "config.json",
      "rollout.json",
    ]);
    const rows = tableRows(csvToTable(await Deno.readTextFile(`${dir}/run/completions.csv`)));
    assert.equal(rows.length, 4);
    for (const row of rows) {
      assert.ok(row.reward === 0 || row.reward === 1);
      assert.ok(Number(row.log_prob) <= 0 && Number(row.raw_log_prob) <= 0);
    }
    const config = JSON.parse(await Deno.readTextFile(`${dir}/run/config.json`));
    assert.equal(config.n, 4);
    assert.equal(config.task, "arithmetic:maxDigits=1");
    const meanReward = rows.reduce((s, r) => s + Number(r.reward), 0) / 4;
    assert.equal(config.meanReward, meanReward);

    const again = await quietly(() => runCli(args));
    assert.equal(again.value, 2);
    assert.match(again.err, /already exists and is not empty \(pass --force/);
    assert.equal((await quietly(() => runCli([...args, "--force"]))).value, 0);
    await Deno.writeTextFile(`${dir}/file`, "x");
    const notDir = await quietly(() => runCli([...args.slice(0, -1), `${dir}/file`]));
    assert.equal(notDir.value, 2);
    assert.match(notDir.err, /exists and is not a folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot pretrain refuses --model beside --init (the checkpoint fixes the model)", async () => {
  const r = await quietly(() => runCli(["pretrain", "--init", "some/ckpt", "--model", "policy"]));
  assert.equal(r.value, 2);
  assert.match(r.err, /--init takes the model from the checkpoint; drop --model/);
});
