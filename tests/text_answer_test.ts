import assert from "node:assert/strict";
import {
  ANSWER_FORMATS,
  type AnswerFormat,
  answersMatch,
  extractFinalAnswer,
  hasBoxedAnswer,
  normalizeAnswer,
} from "../src/tasks/text/answer.ts";
import { Rng } from "../src/util/rng.ts";

type Row = [text: string, format: AnswerFormat, want: string | null];

Deno.test("extractFinalAnswer: boxed", () => {
  const rows: Row[] = [
    ["so \\boxed{42}.", "boxed", "42"],
    ["\\boxed{\\frac{1}{2}}", "boxed", "\\frac{1}{2}"],
    ["nested \\boxed{a^{b_{c}} + {d}}", "boxed", "a^{b_{c}} + {d}"],
    ["first \\boxed{1}, then \\boxed{2}", "boxed", "2"],
    ["\\fbox{7} then \\boxed {8}", "boxed", "8"],
    ["\\boxed{1} and \\fbox{-3}", "boxed", "-3"],
    ["escaped \\boxed{\\{1, 2\\}}", "boxed", "\\{1, 2\\}"],
    ["outer \\boxed{\\boxed{3}}", "boxed", "\\boxed{3}"],
    ["\\boxed{ 5 }", "boxed", "5"],
    ["unclosed \\boxed{42", "boxed", null],
    ["closed \\boxed{1} then unclosed \\boxed{\\frac{2}{3}", "boxed", null],
    ["empty \\boxed{}", "boxed", null],
    ["no box at all: 42", "boxed", null],
    ["\\boxed 42 has no brace", "boxed", null],
  ];
  for (const [text, format, want] of rows) {
    assert.equal(extractFinalAnswer(text, format), want, text);
  }
  assert.equal(hasBoxedAnswer("a \\boxed{3"), true);
  assert.equal(hasBoxedAnswer("a \\fbox {3}"), true);
  assert.equal(hasBoxedAnswer("boxed{3}"), false);
});

Deno.test("extractFinalAnswer: hashes", () => {
  const rows: Row[] = [
    ["She sells 16 - 3 - 4 = 9 eggs.\n#### 9", "hashes", "9"],
    ["#### 1,234\n", "hashes", "1,234"],
    ["#### 1\nmore\n####   -7  \r\nafter", "hashes", "-7"],
    ["#### \nnothing on the line", "hashes", null],
    ["no marker 12", "hashes", null],
    ["#### The total", "hashes", "The total"],
  ];
  for (const [text, format, want] of rows) {
    assert.equal(extractFinalAnswer(text, format), want, text);
  }
});

Deno.test("extractFinalAnswer: last-number", () => {
  const rows: Row[] = [
    ["1 then 2 then 3", "last-number", "3"],
    ["It costs -3.5 dollars.", "last-number", "-3.5"],
    ["total 1,000 and 1,234,567 apples", "last-number", "1,234,567"],
    ["1,2345", "last-number", "2345"],
    ["list 1,2,3", "last-number", "3"],
    ["10-3", "last-number", "3"],
    ["x = -3 and y=-4", "last-number", "-4"],
    ["(a)-5", "last-number", "5"],
    ["$-5$", "last-number", "-5"],
    ["about .5 of it", "last-number", ".5"],
    ["42.", "last-number", "42"],
    ["5km then x2", "last-number", "5"],
    ["H2O and v1.2", "last-number", null],
    ["3/4", "last-number", "4"],
    ["a_1 b^2", "last-number", "2"],
    ["no digits here", "last-number", null],
    ["", "last-number", null],
  ];
  for (const [text, format, want] of rows) {
    assert.equal(extractFinalAnswer(text, format), want, text);
  }
});

Deno.test("extractFinalAnswer: auto: box, then ####, then 'answer is', then the last number", () => {
  const rows: Row[] = [
    ["#### 3\nso \\boxed{4}", "auto", "4"],
    ["The answer is 5. \\boxed{4}", "auto", "4"],
    ["we get 4 and then \\boxed{4", "auto", null],
    ["reasoning 7\n#### 1,234", "auto", "1,234"],
    ["#### $18", "auto", "$18"],
    ["#### Step 1\nThe answer is 12.", "auto", "12"],
    ["#### Step 1\nwe get 12 and 13", "auto", "13"],
    ["The answer is 42 apples.", "auto", "42"],
    ["the ANSWER IS -7, since 3 - 10 = -7.", "auto", "-7"],
    ["Answer: 3/4 of the cake", "auto", "3/4"],
    ["The final answer is: **$18**.", "auto", "$18"],
    ["answer: \\frac{1}{2}. Done", "auto", "\\frac{1}{2}"],
    ["The answer is 3 \\sqrt{2}.", "auto", "3 \\sqrt{2}"],
    ["The answer is 3x + 2.", "auto", "3x + 2"],
    ["The answer is 3.5.\nThe answer is 2.", "auto", "2"],
    ["Answer is Paris.", "auto", "Paris"],
    ["The answer is", "auto", null],
    ["We add 3 and 4 to get 7", "auto", "7"],
    ["nothing", "auto", null],
  ];
  for (const [text, format, want] of rows) {
    assert.equal(extractFinalAnswer(text, format), want, text);
  }
  assert.throws(
    () => extractFinalAnswer("1", "latex" as AnswerFormat),
    /unknown answer format 'latex'/,
  );
  assert.deepEqual([...ANSWER_FORMATS], ["auto", "boxed", "hashes", "last-number"]);
});

Deno.test("normalizeAnswer: table", () => {
  const rows: [string, string][] = [
    [" 42 ", "42"],
    ["+007", "7"],
    ["-0", "0"],
    ["-0.000", "0"],
    ["42.50", "42.5"],
    ["7.0", "7"],
    ["1,234", "1234"],
    ["1,234.50", "1234.5"],
    ["1\\,000", "1000"],
    ["1,2", "1,2"],
    ["12,34", "12,34"],
    [".5", "0.5"],
    ["$5$", "5"],
    ["$$5$$", "5"],
    ["\\(5\\)", "5"],
    ["\\[5\\]", "5"],
    ["$18", "18"],
    ["\\$18.90", "18.9"],
    ["$\\$5$", "5"],
    ["1{,}000", "1000"],
    ["1{,}00", "1,00"],
    ["5.", "5"],
    ["\\boxed{5}.", "5"],
    ["**42**", "42"],
    ["\\text{ 12 }", "12"],
    ["\\frac{4}{2}", "2"],
    ["\\dfrac{6}{4}", "1.5"],
    ["\\tfrac{1}{3}", "1/3"],
    ["\\frac12", "0.5"],
    ["\\frac{1}2", "0.5"],
    ["-\\frac{1}{3}", "-1/3"],
    ["\\frac{-2}{6}", "-1/3"],
    ["-\\frac{1}{-3}", "1/3"],
    ["2/6", "1/3"],
    ["1 / -8", "-0.125"],
    ["\\frac{1.5}{3}", "0.5"],
    ["0.333", "0.333"],
    ["1/0", "1/0"],
    ["\\frac{1}{0}", "\\frac{1}{0}"],
    ["\\text{Paris}", "Paris"],
    ["\\textbf{New   York}", "New York"],
    ["\\left( 1,\\ 2 \\right)", "( 1, 2 )"],
    ["\\rightarrow", "\\rightarrow"],
    ["$1$ and $2$", "$1$ and $2$"],
    ["\\(1\\) and \\(2\\)", "\\(1\\) and \\(2\\)"],
    ["x = 5", "x = 5"],
    ["5 cm", "5 cm"],
    ["50\\%", "50\\%"],
    ["3\\sqrt{2}", "3\\sqrt{2}"],
    ["", ""],
    ["$ $", ""],
  ];
  for (const [input, want] of rows) assert.equal(normalizeAnswer(input), want, input);
  assert.equal(normalizeAnswer("9".repeat(1001)), "9".repeat(1001), "over 1000 digits stays text");
  assert.equal(normalizeAnswer("0" + "9".repeat(999)), "9".repeat(999));
});

Deno.test("answersMatch: null, empty, case and the cases that must not match", () => {
  assert.equal(answersMatch(null, "1"), false);
  assert.equal(answersMatch("", ""), false);
  assert.equal(answersMatch("$ $", ""), false);
  assert.equal(answersMatch("Yes", "yes"), false);
  assert.equal(answersMatch("\\text{Yes}", "Yes"), true);
  assert.equal(answersMatch("0.333", "\\frac{1}{3}"), false);
  assert.equal(answersMatch("0.5", "\\frac{1}{2}"), true);
  assert.equal(answersMatch("5 cm", "5"), false);
  assert.equal(answersMatch("1,2", "12"), false);
  assert.equal(answersMatch("12,34", "1234"), false);
  assert.equal(answersMatch("1/0", "2/0"), false);
  assert.equal(answersMatch("0.30000000000000004", "0.3"), false);
  assert.equal(answersMatch("9007199254740993", "9007199254740992"), false);
});

// ---- property tests against an independent rational reference ----

function gcdRef(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The value of a canonical form read back independently: `n`, `-n.ddd` or `a/b`. */
function readCanonical(s: string): [bigint, bigint] {
  const slash = /^(-?\d+)\/(\d+)$/.exec(s);
  if (slash) return [BigInt(slash[1]), BigInt(slash[2])];
  const dec = /^(-?)(\d+)(?:\.(\d*[1-9]))?$/.exec(s);
  assert.ok(dec, `not a canonical number: ${s}`);
  const frac = dec[3] ?? "";
  const num = BigInt(dec[2] + frac) * (dec[1] === "-" ? -1n : 1n);
  const den = 10n ** BigInt(frac.length);
  const g = gcdRef(num, den);
  return [num / g, den / g];
}

function withCommas(digits: string): string {
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
    out += digits[i];
  }
  return out;
}

/** A random integer with up to 25 digits (beyond float precision on purpose), zero included. */
function randomInteger(rng: Rng): bigint {
  const len = 1 + rng.int(25);
  let s = "";
  for (let i = 0; i < len; i++) s += rng.int(10);
  const v = BigInt(s);
  return rng.uniform() < 0.4 ? -v : v;
}

/** Spellings of the integer `n` that must all normalize alike. */
function integerSpellings(n: bigint, rng: Rng): string[] {
  const abs = n < 0n ? -n : n;
  const sign = n < 0n ? "-" : "";
  const k = BigInt(1 + rng.int(50));
  const out = [
    `${n}`,
    `${sign}${withCommas(abs.toString())}`,
    `${n}.0`,
    `${sign}${withCommas(abs.toString())}.${"0".repeat(1 + rng.int(3))}`,
    `${sign}00${abs}`,
    `$${n}$`,
    `\\(${n}\\)`,
    `\\boxed{${n}}`,
    `\\text{${n}}`,
    `**${n}**`,
    `${n}.`,
    ` ${n} `,
    `\\frac{${n * k}}{${k}}`,
    `\\dfrac{${n * k}}{${k}}`,
    `${n * k}/${k}`,
    `${sign}\\frac{${abs * k}}{${k}}`,
    `\\frac{${-n * k}}{-${k}}`,
  ];
  if (n >= 0n) out.push(`+${n}`, `$${withCommas(abs.toString())}`);
  return out;
}

/** Spellings of `num/den` (den > 0, any gcd) that must all normalize alike. */
function rationalSpellings(num: bigint, den: bigint): string[] {
  const abs = num < 0n ? -num : num;
  const sign = num < 0n ? "-" : "";
  const out = [
    `\\frac{${num}}{${den}}`,
    `\\dfrac{${num}}{${den}}`,
    `${sign}\\frac{${abs}}{${den}}`,
    `\\frac{${abs}}{${sign}${den}}`,
    `${num}/${den}`,
    `$\\frac{${num * 3n}}{${den * 3n}}$`,
    `\\boxed{\\tfrac{${num}}{${den}}}`,
  ];
  // A finite decimal expansion is one more spelling of the same value.
  const g = gcdRef(num, den);
  let d = den / g;
  let places = 0n;
  for (const p of [2n, 5n]) {
    let count = 0n;
    while (d % p === 0n) [d, count] = [d / p, count + 1n];
    if (count > places) places = count;
  }
  if (d === 1n) {
    const scaled = (abs / g) * (10n ** places / (den / g));
    const digits = scaled.toString().padStart(Number(places) + 1, "0");
    const point = digits.length - Number(places);
    out.push(`${sign}${digits.slice(0, point)}.${digits.slice(point)}000`);
  }
  return out;
}

function randomRational(rng: Rng): [bigint, bigint] {
  const num = BigInt(rng.int(2001) - 1000);
  const den = BigInt(1 + rng.int(rng.uniform() < 0.5 ? 16 : 400));
  return [num, den];
}

Deno.test("normalizeAnswer: every spelling of a random integer is one canonical integer", () => {
  const rng = new Rng(101);
  for (let t = 0; t < 600; t++) {
    const n = randomInteger(rng);
    const spellings = integerSpellings(n, rng);
    for (const s of spellings) {
      assert.equal(normalizeAnswer(s), n.toString(), `${s} should be ${n}`);
      assert.ok(answersMatch(s, spellings[(t + 1) % spellings.length]), s);
    }
  }
});

Deno.test("normalizeAnswer: every spelling of a random rational has that exact value", () => {
  const rng = new Rng(202);
  for (let t = 0; t < 1500; t++) {
    const [num, den] = randomRational(rng);
    const g = gcdRef(num, den);
    const want: [bigint, bigint] = [num / g, den / g];
    const spellings = rationalSpellings(num, den);
    const canonical = normalizeAnswer(spellings[0]);
    assert.deepEqual(readCanonical(canonical), want, `${spellings[0]} → ${canonical}`);
    for (const s of spellings) assert.equal(normalizeAnswer(s), canonical, s);
  }
});

Deno.test("answersMatch: different random values never match, equal ones always do", () => {
  const rng = new Rng(303);
  let different = 0;
  for (let t = 0; t < 4000; t++) {
    const [a, b] = randomRational(rng);
    // Nearby values on purpose: same denominator, numerator off by one, or a scaled copy.
    const pick = rng.int(3);
    const [c, d] = pick === 0 ? randomRational(rng) : pick === 1 ? [a + 1n, b] : [a * 2n, b * 2n];
    const same = a * d === c * b;
    if (!same) different++;
    const left = rationalSpellings(a, b);
    const right = rationalSpellings(c, d);
    const x = left[rng.int(left.length)];
    const y = right[rng.int(right.length)];
    assert.equal(answersMatch(x, y), same, `${x} vs ${y}`);
  }
  assert.ok(different > 2000, `only ${different} different pairs`);
  for (let t = 0; t < 2000; t++) {
    const n = randomInteger(rng);
    const m = rng.uniform() < 0.5 ? n + 1n : randomInteger(rng);
    const x = integerSpellings(n, rng);
    const y = integerSpellings(m, rng);
    assert.equal(answersMatch(x[rng.int(x.length)], y[rng.int(y.length)]), n === m, `${n} ${m}`);
  }
});

Deno.test("extractFinalAnswer: a random value in random text round-trips in every format", () => {
  const rng = new Rng(404);
  const words = ["apples", "so", "the", "total", "is", "we", "add", "then", "x2", "H2O", "and"];
  const filler = (): string => {
    const parts: string[] = [];
    for (let i = rng.int(12); i > 0; i--) {
      parts.push(rng.uniform() < 0.3 ? String(rng.int(1000)) : words[rng.int(words.length)]);
    }
    return parts.join(" ");
  };
  for (let t = 0; t < 500; t++) {
    const n = randomInteger(rng);
    const [num, den] = randomRational(rng);
    const text = `${filler()} ${n}`;
    assert.ok(answersMatch(extractFinalAnswer(text, "last-number"), n.toString()), text);
    assert.ok(answersMatch(extractFinalAnswer(text, "auto"), n.toString()), text);
    const spelled = (n < 0n ? "-" : "") + withCommas((n < 0n ? -n : n).toString());
    const hashes = `${filler()}\n#### ${spelled}\n`;
    assert.equal(extractFinalAnswer(hashes, "hashes"), spelled, hashes);
    assert.ok(answersMatch(extractFinalAnswer(hashes, "auto"), n.toString()), hashes);
    const frac = rationalSpellings(num, den)[0];
    const boxed = `${filler()} \\boxed{${n}} ${filler()} $\\boxed{${frac}}$ ${filler()}.`;
    assert.equal(extractFinalAnswer(boxed, "boxed"), frac, boxed);
    assert.ok(answersMatch(extractFinalAnswer(boxed, "auto"), `${num}/${den}`), boxed);
    const said = `${filler()}. The answer is ${n}. ${filler()}`;
    assert.ok(answersMatch(extractFinalAnswer(said, "auto"), n.toString()), said);
  }
});
