import assert from "node:assert/strict";
import { createTask, pseudoWords } from "../src/tasks/mod.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("wordsort: vocabulary has 1,028 tokens whose id order is alphabetical", () => {
  const task = createTask("wordsort", {});
  const tok = task.tokenizer;
  assert.equal(tok.vocabSize, 1028);
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
  const words = Array.from({ length: 1024 }, (_, i) => tok.tokenString(4 + i));
  for (let i = 1; i < words.length; i++) {
    assert.ok(words[i - 1] < words[i], `${words[i - 1]} ${words[i]}`);
  }
  assert.equal(createTask("wordsort", { words: 5000 }).tokenizer.vocabSize, 5004);
});

Deno.test("wordsort: pseudoWords are distinct, ascending and of equal length for many counts", () => {
  const rng = new Rng(2);
  for (
    const n of [
      1,
      2,
      69,
      70,
      71,
      4900,
      4901,
      ...Array.from({ length: 5 }, () => 1 + rng.int(20000)),
    ]
  ) {
    const w = pseudoWords(n);
    assert.equal(w.length, n);
    for (let i = 1; i < n; i++) {
      assert.ok(w[i - 1] < w[i]);
      assert.equal(w[i].length, w[0].length);
    }
  }
  assert.throws(() => pseudoWords(0), /count >= 1/);
});

Deno.test("wordsort: answers equal an independent string sort of the prompt's words", () => {
  for (const unique of [false, true]) {
    const task = createTask("wordsort", { minItems: 1, maxItems: 12, unique });
    const tok = task.tokenizer;
    const lengths = new Set<number>();
    let repeats = 0;
    for (const ex of task.sample(new Rng(7), 400)) {
      const text = tok.decode(ex.prompt);
      assert.ok(text.startsWith("<bos> ") && text.endsWith(" ="), text);
      const words = text.slice(6, -2).split(" ");
      lengths.add(words.length);
      if (new Set(words).size < words.length) repeats++;
      const sorted = [...words].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.equal(tok.decode(ex.answer), sorted.join(" "));
      assert.deepEqual(task.referenceAnswer(ex.prompt), ex.answer);
      assert.ok(
        ex.prompt.length <= task.maxPromptLength && ex.answer.length <= task.maxAnswerLength,
      );
    }
    assert.equal(lengths.size, 12, "every list length 1..12 occurs");
    if (unique) assert.equal(repeats, 0);
  }
  // With a tiny vocabulary repeats must occur, and sorting keeps them.
  const small = createTask("wordsort", { words: 3, minItems: 6, maxItems: 6 });
  const ex = small.sample(new Rng(1), 1)[0];
  assert.equal(ex.answer.length, 6);
  assert.ok(new Set(ex.answer).size <= 3, "pigeonhole: 6 words from 3 repeat");
  assert.deepEqual(ex.answer, ex.prompt.slice(1, -1).sort());
});

Deno.test("wordsort: same seed gives the same examples, other seeds differ", () => {
  const task = createTask("wordsort", {});
  const a = task.sample(new Rng(100), 30);
  assert.deepEqual(a, task.sample(new Rng(100), 30));
  const b = task.sample(new Rng(101), 30);
  assert.ok(a.some((e, i) => e.prompt.join() !== b[i].prompt.join()));
});

Deno.test("wordsort: reward is 1 for the sorted list and 0 for generated corruptions", () => {
  const task = createTask("wordsort", { minItems: 2, maxItems: 8, unique: true });
  const tok = task.tokenizer;
  const eos = tok.eosId;
  const rng = new Rng(4);
  for (const ex of task.sample(new Rng(8), 200)) {
    const ans = [...ex.answer];
    assert.equal(task.reward(ex.prompt, [...ans, eos, tok.padId]), 1);
    assert.ok(task.isCorrect(ex.prompt, [...ans, eos]));
    const i = rng.int(ans.length - 1);
    const swapped = [...ans];
    [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]];
    let other = 4 + rng.int(1024);
    while (ans.includes(other)) other = 4 + rng.int(1024);
    const unsorted = [...ex.prompt.slice(1, -1)];
    if (unsorted.join() === ans.join()) unsorted.reverse();
    const corrupted = [
      swapped, // adjacent swap (distinct words, so the order is wrong)
      unsorted, // the prompt's order
      ans.map((t, k) => (k === i ? other : t)), // one word replaced
      ans.slice(1), // one word missing
      [...ans, ans[ans.length - 1]], // one word repeated
      [...ans, tok.bosId], // a special token before the stop
    ];
    for (const c of corrupted) assert.equal(task.reward(ex.prompt, [...c, eos]), 0, tok.decode(c));
    assert.equal(task.reward(ex.prompt, ans), 0, "no stop token");
  }
});

Deno.test("wordsort: tokenizer round-trips and refuses unknown words; bad prompts and options throw", () => {
  const task = createTask("wordsort", {});
  const tok = task.tokenizer;
  const rng = new Rng(6);
  for (let k = 0; k < 50; k++) {
    const ids = Array.from({ length: 1 + rng.int(10) }, () => 3 + rng.int(1025));
    assert.deepEqual(Array.from(tok.encode(tok.decode(ids))), ids);
    const text = tok.decode(ids);
    assert.equal(tok.decode(tok.encode(`  ${text.replaceAll(" ", "\n ")} `)), text);
  }
  assert.throws(() => tok.encode("baba xyzzy"), /word "xyzzy" \(word 1 of the text\)/);
  assert.throws(() => tok.decode([1028]), /outside the vocabulary \[0, 1028\)/);
  const sep = tok.encode("=")[0];
  const w = tok.encode(tok.tokenString(10))[0];
  assert.throws(() => task.reward([tok.bosId, w], [tok.eosId]), /not a wordsort prompt/);
  assert.throws(() => task.reward([w, w, sep], [tok.eosId]), /not a wordsort prompt/);
  assert.throws(() => task.reward([tok.bosId, sep], [tok.eosId]), /not a wordsort prompt/);
  assert.throws(
    () => task.reward([tok.bosId, w, tok.eosId, sep], [tok.eosId]),
    /token 2 is 2, not a word/,
  );
  assert.throws(() => createTask("wordsort", { minItems: 5, maxItems: 3 }), /minItems \(5\)/);
  assert.throws(() => createTask("wordsort", { words: 4, maxItems: 5, unique: true }), /at least/);
  assert.throws(() => createTask("wordsort", { unique: "yes" }), /unique' must be true or false/);
});
