// `jackpot generate` on a folder laid out like a Hugging Face Qwen download (config.json,
// model.safetensors, tokenizer.json, generation_config.json): the completions it prints and
// writes are the rollout engine's on the tokenizer's encoding of the prompt (ChatML for --chat),
// stopping at the folder's end tokens; bad input is a usage error naming the problem.
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { initTensors } from "../src/tensor/mod.ts";
import { completion, RolloutEngine } from "../src/nn/rollout.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { noGrad } from "../src/autograd/mod.ts";
import { chatPrompt, readGenerationDefaults } from "../src/cli/commands/generate_prompts.ts";
import { renderReference, TEST_TEMPLATE } from "./text_util.ts";
import { ENDOFTEXT, hubTok, IM_END, qwenLikeFolder as hubFolder } from "./hub_util.ts";

const tok = hubTok;
const qwenLikeFolder = (generation?: Record<string, unknown>) => hubFolder({ generation });

Deno.test("jackpot generate: greedy --chat completions equal the engine's on the ChatML prompt", async () => {
  await initTensors();
  const dir = await qwenLikeFolder({
    do_sample: true,
    temperature: 0.7,
    top_p: 0.8,
    top_k: 20,
    repetition_penalty: 1.05,
    eos_token_id: [IM_END, ENDOFTEXT],
  });
  try {
    const prompts = ["What is 2+2?", "Say héllo, 世界 🙂"];
    await Deno.writeTextFile(
      `${dir}/prompts.jsonl`,
      prompts.map((p) => JSON.stringify(p)).join("\n"),
    );
    const args = [
      "generate",
      "--checkpoint",
      dir,
      "--prompts",
      `${dir}/prompts.jsonl`,
      "--chat",
      "--temperature",
      "0",
      "--max-new",
      "6",
      "--json",
      `${dir}/gen.json`,
      "--out",
      `${dir}/run`,
      "--quiet",
    ];
    const cli = await quietly(() => runCli(args));
    assert.equal(cli.value, 0, cli.err);
    assert.match(cli.err, /repetition_penalty 1\.05, which jackpot does not apply/);
    const got = JSON.parse(await Deno.readTextFile(`${dir}/gen.json`));
    assert.deepEqual(got.stopIds.slice().sort(), [ENDOFTEXT, IM_END].sort());
    assert.equal(got.settings.temperature, 0);
    const names = [];
    for await (const e of Deno.readDir(`${dir}/run`)) names.push(e.name);
    assert.deepEqual(names.sort(), ["completions.csv", "completions.json", "config.json"]);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/run/config.json`));
    assert.equal(config.command, "generate");
    assert.equal(config.chat, true);
    assert.deepEqual(config.sampling, { temperature: 0, topK: 20, topP: 0.8, captureK: 0 });

    // The same rows through the API: the prompt is the ChatML text's encoding (no bos for Qwen).
    const ckpt = await import("../src/nn/checkpoint/mod.ts").then((m) => m.loadCheckpoint(dir));
    const model = Transformer.fromTensors(ckpt.config, ckpt.tensors);
    const ids = prompts.map((p) => Array.from(tok.encode(chatPrompt(tok, p))));
    const engine = new RolloutEngine(model, {
      maxBatch: 2,
      maxPromptLength: Math.max(...ids.map((p) => p.length)),
      maxNewTokens: 6,
    });
    const want = await engine.generate(ids, {
      seed: 1,
      temperature: 0,
      stopId: [IM_END, ENDOFTEXT],
      padId: ENDOFTEXT,
    });
    engine.dispose();
    noGrad(() => model.dispose());
    got.rows.forEach((row: Record<string, unknown>, b: number) => {
      assert.equal(row.promptText, prompts[b]);
      assert.deepEqual(row.promptIds, ids[b]);
      assert.deepEqual(row.completionIds, Array.from(completion(want, b)));
      assert.equal(row.stopped, want.stopped[b] === 1);
      // The printed text is the tokenizer's decoding (ids past its vocabulary shown as <id N>).
      const parts: string[] = [];
      let run: number[] = [];
      for (const id of [...(row.completionIds as number[]), -1]) {
        if (id >= 0 && id < tok.vocabSize) {
          run.push(id);
          continue;
        }
        parts.push(tok.decode(run, { skipSpecial: true }));
        if (id >= 0) parts.push(`<id ${id}>`);
        run = [];
      }
      const text = parts.join("");
      assert.equal(row.completionText, text);
      assert.ok(cli.out.includes(`[${b + 1}] ${prompts[b]}`));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot generate: --chat runs the folder's chat template (system, --no-thinking); without one, ChatML with a note", async () => {
  await initTensors();
  const dir = await qwenLikeFolder();
  try {
    const run = (extra: string[]) =>
      quietly(() =>
        runCli([
          "generate",
          "--checkpoint",
          dir,
          "--prompt",
          "Hi there",
          "--max-new",
          "2",
          "--temperature",
          "0",
          "--json",
          `${dir}/gen.json`,
          "--quiet",
          ...extra,
        ])
      );
    const promptIds = async () =>
      JSON.parse(await Deno.readTextFile(`${dir}/gen.json`)).rows[0].promptIds;
    const plain = await run(["--chat"]);
    assert.equal(plain.value, 0, plain.err);
    assert.match(plain.err, /has no chat template; --chat writes ChatML/);
    assert.deepEqual(await promptIds(), Array.from(tok.encode(chatPrompt(tok, "Hi there"))));

    await Deno.writeTextFile(`${dir}/chat_template.jinja`, TEST_TEMPLATE);
    const templated = await run(["--chat", "--system", "Be brief.", "--no-thinking"]);
    assert.equal(templated.value, 0, templated.err);
    assert.doesNotMatch(templated.err, /no chat template/);
    const text = renderReference(
      [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi there" }],
      { addGenerationPrompt: true, enableThinking: false, bos: null },
    );
    assert.match(text, /<think>\n\n<\/think>\n\n$/);
    assert.deepEqual(await promptIds(), Array.from(tok.encode(text)));

    // A template that raises is exit 2 with its message; one that does not parse is exit 1.
    await Deno.writeTextFile(
      `${dir}/chat_template.jinja`,
      "{{ raise_exception('only one turn, please') }}",
    );
    const raised = await run(["--chat"]);
    assert.equal(raised.value, 2);
    assert.match(
      raised.err,
      /--chat: .*chat_template\.jinja: the chat template failed: only one turn/,
    );
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{% if %}");
    const broken = await run(["--chat"]);
    assert.equal(broken.value, 1);
    assert.match(broken.err, /chat_template\.jinja: the chat template does not parse/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot generate: generation_config.json sampling defaults, greedy without do_sample", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const w = (g: unknown) =>
      Deno.writeTextFile(`${dir}/generation_config.json`, JSON.stringify(g));
    assert.deepEqual(await readGenerationDefaults(dir), {
      settings: { temperature: 1, topK: 0, topP: 1 },
      ignored: [],
    });
    await w({ do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95, repetition_penalty: 1 });
    assert.deepEqual(await readGenerationDefaults(dir), {
      settings: { temperature: 0.6, topK: 20, topP: 0.95 },
      ignored: [],
    });
    await w({ temperature: 0.6, min_p: 0.05 });
    assert.deepEqual(await readGenerationDefaults(dir), {
      settings: { temperature: 0, topK: 0, topP: 1 },
      ignored: ["min_p 0.05"],
    });
    await w({ do_sample: true, top_p: 1.5 });
    await assert.rejects(() => readGenerationDefaults(dir), /'top_p' is 1.5, not a valid value/);
    await Deno.writeTextFile(`${dir}/generation_config.json`, "{");
    await assert.rejects(
      () => readGenerationDefaults(dir),
      /generation_config.json is not valid JSON/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot generate: bad input is exit 2 naming the problem", async () => {
  await initTensors();
  const dir = await qwenLikeFolder();
  try {
    const base = ["generate", "--checkpoint", dir, "--quiet"];
    const cases: [string[], RegExp][] = [
      [[], /exactly one of --prompt TEXT and --prompts FILE/],
      [["--prompt", "a", "--prompts", "x.txt"], /exactly one of --prompt/],
      [["--prompts", `${dir}/missing.txt`], /--prompts: .*missing\.txt not found/],
      [["--prompt", ""], /prompt 1 is empty/],
      [["--prompt", "hi", "--system", "be brief"], /--system needs --chat/],
      [["--prompt", "hi", "--no-thinking"], /--no-thinking needs --chat/],
      [["--prompt", "hi", "--max-new", "100000"], /exceeds the model's \d+ positions/],
      [
        ["--prompt", "hi", "--max-new", "4", "--top-k", "100000"],
        /--top-k 100000 exceeds the vocabulary/,
      ],
      [["--prompt", "hi", "--max-new", "4", "--capture-k", "300"], /--capture-k/],
      [["--prompt", "hi", "--samples", "0"], /--samples/],
    ];
    for (const [extra, message] of cases) {
      const r = await quietly(() => runCli([...base, ...extra]));
      assert.equal(r.value, 2, `${extra.join(" ")}: ${r.err}`);
      assert.match(r.err, message, extra.join(" "));
    }
    await Deno.writeTextFile(`${dir}/bad.jsonl`, '"ok"\n{"text": 1}\n');
    const bad = await quietly(() => runCli([...base, "--prompts", `${dir}/bad.jsonl`]));
    assert.equal(bad.value, 2);
    assert.match(bad.err, /line 2 is neither a JSON string nor \{"prompt": "..."\}/);
    await Deno.remove(`${dir}/tokenizer.json`);
    const none = await quietly(() => runCli([...base, "--prompt", "hi"]));
    assert.equal(none.value, 2);
    assert.match(none.err, /tokenizer\.json not found; .*use `jackpot sample`/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
