import assert from "node:assert/strict";
import { createTask } from "../src/tasks/mod.ts";
import { Rng } from "../src/util/rng.ts";

/** Independent reference: parse the decoded prompt with string splits and compute in BigInt. */
function referenceText(promptText: string, reverse: boolean): string {
  assert.ok(promptText.startsWith("<bos>") && promptText.endsWith("="));
  const body = promptText.slice(5, -1);
  const opIndex = Math.max(body.indexOf("+"), body.indexOf("-"), body.indexOf("*"));
  const a = BigInt(body.slice(0, opIndex));
  const b = BigInt(body.slice(opIndex + 1));
  const op = body[opIndex];
  const r = op === "+" ? a + b : op === "-" ? a - b : a * b;
  const digits = (r < 0n ? -r : r).toString();
  return (r < 0n ? "-" : "") + (reverse ? [...digits].reverse().join("") : digits);
}

Deno.test("arithmetic: examples match an independent BigInt reference", () => {
  for (const reverseAnswer of [false, true]) {
    const task = createTask("arithmetic", { maxDigits: 4, ops: "+-*", reverseAnswer });
    const tok = task.tokenizer;
    const seenOps = new Set<string>();
    let negative = 0;
    for (const ex of task.sample(new Rng(11), 400)) {
      const text = tok.decode(ex.prompt);
      const want = referenceText(text, reverseAnswer);
      assert.equal(tok.decode(ex.answer), want, text);
      assert.deepEqual(task.referenceAnswer(ex.prompt), ex.answer);
      assert.ok(ex.prompt.length <= task.maxPromptLength);
      assert.ok(ex.answer.length <= task.maxAnswerLength);
      seenOps.add(text.match(/[+\-*]/)![0]);
      if (want.startsWith("-")) negative++;
    }
    assert.deepEqual([...seenOps].sort(), ["*", "+", "-"]);
    assert.ok(negative > 0, "subtraction should sometimes be negative");
  }
});

Deno.test("arithmetic: digit counts stay in [minDigits, maxDigits] and all counts occur", () => {
  const task = createTask("arithmetic", { minDigits: 2, maxDigits: 5, ops: "+" });
  const counts = new Map<number, number>();
  for (const ex of task.sample(new Rng(5), 500)) {
    const [a, b] = task.tokenizer.decode(ex.prompt, { skipSpecial: true }).slice(0, -1).split("+");
    for (const x of [a, b]) {
      assert.ok(x.length >= 2 && x.length <= 5, x);
      assert.notEqual(x[0], "0", `leading zero in ${x}`);
      counts.set(x.length, (counts.get(x.length) ?? 0) + 1);
    }
  }
  assert.deepEqual([...counts.keys()].sort(), [2, 3, 4, 5]);
});

Deno.test("arithmetic: maxAnswerLength is reached by the extreme operands", () => {
  for (const ops of ["+", "-", "*", "+-*"]) {
    const task = createTask("arithmetic", { maxDigits: 3, ops });
    const worst = Math.max(
      ...[...ops].map((op) =>
        referenceText(`<bos>${op === "-" ? "0" : "999"}${op}999=`, false).length
      ),
    );
    assert.equal(task.maxAnswerLength, worst, ops);
  }
});

Deno.test("arithmetic: same seed gives the same examples, other seeds differ", () => {
  const task = createTask("arithmetic", {});
  const a = task.sample(new Rng(42), 50);
  const b = task.sample(new Rng(42), 50);
  const c = task.sample(new Rng(43), 50);
  const d = task.sample(new Rng(42).fork(1), 50);
  assert.deepEqual(a, b);
  const same = (x: typeof a, y: typeof a) =>
    x.every((e, i) => e.prompt.join() === y[i].prompt.join());
  assert.ok(!same(a, c));
  assert.ok(!same(a, d));
});

Deno.test("arithmetic: reward is 1 for the exact answer and 0 for generated corruptions", () => {
  const task = createTask("arithmetic", { maxDigits: 3, ops: "+-*" });
  const tok = task.tokenizer;
  const rng = new Rng(9);
  const nonStop = Array.from({ length: tok.vocabSize }, (_, i) => i).filter((i) => i !== tok.eosId);
  for (const ex of task.sample(new Rng(1), 200)) {
    const ans = [...ex.answer];
    const eos = tok.eosId;
    assert.equal(task.reward(ex.prompt, [...ans, eos]), 1);
    assert.equal(task.reward(ex.prompt, [...ans, eos, tok.padId, tok.padId]), 1);
    assert.equal(
      task.reward(ex.prompt, [...ans, eos, ...tok.encode("123")]),
      1,
      "after stop ignored",
    );
    assert.ok(task.isCorrect(ex.prompt, [...ans, eos]));
    // One token replaced by any other non-stop token.
    const pos = rng.int(ans.length);
    let other = nonStop[rng.int(nonStop.length)];
    while (other === ans[pos]) other = nonStop[rng.int(nonStop.length)];
    const corrupted = [
      ans.map((t, i) => (i === pos ? other : t)),
      ans.slice(0, -1), // dropped last token
      [...ans, ...tok.encode(String(rng.int(10)))], // extra digit
      [...tok.encode("0"), ...ans], // leading zero
      [...tok.encode(" "), ...ans], // leading space
      [...ans, ...tok.encode(" ")], // trailing space
    ];
    for (const c of corrupted) {
      assert.equal(task.reward(ex.prompt, [...c, eos]), 0, tok.decode(c));
      assert.ok(!task.isCorrect(ex.prompt, [...c, eos]));
    }
    assert.equal(task.reward(ex.prompt, ans), 0, "no stop token");
    assert.equal(task.reward(ex.prompt, []), 0, "empty completion");
  }
});

Deno.test("arithmetic: tokenizer round-trips random text and refuses unknown characters", () => {
  const task = createTask("arithmetic", {});
  const tok = task.tokenizer;
  assert.equal(tok.vocabSize, 18);
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
  const alphabet = "0123456789+-*= ";
  const rng = new Rng(3);
  for (let i = 0; i < 100; i++) {
    const s = Array.from({ length: rng.int(20) }, () => alphabet[rng.int(alphabet.length)]).join(
      "",
    );
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  for (let id = 0; id < tok.vocabSize; id++) {
    if (id > 2) assert.deepEqual(Array.from(tok.encode(tok.tokenString(id))), [id]);
  }
  assert.throws(() => tok.encode("12/3"), /character "\/" at position 2/);
  assert.throws(() => tok.decode([5, 18]), /token id 18 is outside the vocabulary \[0, 18\)/);
  assert.throws(() => tok.decode([-1]), /outside the vocabulary/);
  assert.equal(tok.decode([1, 5, 2], { skipSpecial: true }), tok.tokenString(5));
});

Deno.test("arithmetic: malformed prompts and options give clear errors", () => {
  const task = createTask("arithmetic", {});
  const tok = task.tokenizer;
  const withBos = (s: string) => [tok.bosId, ...tok.encode(s)];
  assert.throws(() => task.reward(tok.encode("1+2="), [tok.eosId]), /must start with <bos>/);
  for (const bad of ["1+2", "+2=", "1+=", "1+2+3=", "01+2=", "1 + 2="]) {
    assert.throws(() => task.reward(withBos(bad), [tok.eosId]), /not an arithmetic prompt/, bad);
  }
  assert.throws(() => createTask("arithmetic", { ops: "+/" }), /ops.*subset of '\+-\*'/);
  assert.throws(() => createTask("arithmetic", { ops: "++" }), /without repeats/);
  assert.throws(() => createTask("arithmetic", { minDigits: 4, maxDigits: 2 }), /minDigits \(4\)/);
  assert.throws(() => createTask("arithmetic", { maxDigits: 0 }), /maxDigits.*\[1, 18\], got 0/);
  assert.throws(() => createTask("arithmetic", { maxDigits: "x" }), /maxDigits.*got "x"/);
  assert.throws(() => createTask("arithmetic", { digits: 3 }), /no option 'digits'.*minDigits/);
  assert.throws(() => task.sample(new Rng(0), -1), /n >= 0/);
});
