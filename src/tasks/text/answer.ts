/**
 * Final answers of completions: where the answer is in the text, and when two answers are the same.
 *
 * This turns a model's free text into a verifiable reward for the `text` task, so every rule is
 * written here and nothing else is tolerated. The rules are conservative: a wrong answer must
 * never be accepted, and a right answer spelt oddly may be refused.
 *
 * ## Where the final answer is ({@link extractFinalAnswer})
 *
 * - `boxed`: the content of the last top-level `\boxed{…}` or `\fbox{…}` (space allowed before the
 *   brace), with nested braces balanced and `\{`, `\}` not counted, so `\boxed{\frac{1}{2}}` gives
 *   `\frac{1}{2}`. A box inside another box is part of the outer box's content. A box that is never
 *   closed (a completion cut off inside it) or an empty box gives null.
 * - `hashes`: GSM8K's marker: the text after the last `####` up to the end of that line, trimmed;
 *   nothing there gives null.
 * - `last-number`: the last number in the text. A number is digits with an optional fractional
 *   part (`3.25`), or digits grouped by thousands commas (`1,234,567`, groups of exactly three), or
 *   a bare fraction `.5`. Digits right after a letter, an underscore or a `.` do not start a number
 *   (`x2`, `H2O`, `v1.2`: no number at the `2`), whatever follows does not matter (`5km` → `5`).
 *   A `-` right before is a sign unless it follows a letter, digit, `_` or a closing bracket
 *   (`x = -3` → `-3`; `10-3` → `3`). Fractions `a/b` are not numbers here (`3/4` → `4`).
 * - `auto`: the first of these whose marker is present decides, in this order:
 *   1. a box opener `\boxed{` or `\fbox{` → as `boxed` (null when unclosed: a cut-off completion
 *      gets no credit from a number it wrote earlier);
 *   2. a last `####` line whose text is a number (see {@link normalizeAnswer}) → that text; a
 *      `####` line with anything else is taken for a Markdown heading and ignored;
 *   3. the last `answer is` or `answer:` (any case, `The final answer is: 42`) → the rest of that
 *      sentence (up to the end of the line, or a `.` followed by a space or the end), trimmed and
 *      without Markdown bold `**`; when it starts with a number (signed, thousands commas,
 *      decimal, or `a/b`, a currency `$` allowed) followed by nothing, or by a word of two letters or
 *      more (`42 apples`, `42, since …`), only that number; nothing there gives null;
 *   4. otherwise as `last-number`.
 *
 * ## When two answers are the same ({@link normalizeAnswer}, {@link answersMatch})
 *
 * Both answers are brought to a canonical form and compared as strings, case-sensitively:
 * 1. the LaTeX thin spaces `\,` `\!` `\;` `\:` are removed (so `1\,000` is `1000`), `\ ` becomes a
 *    space, `{,}` becomes `,` (`1{,}000`), `\left` and `\right` are removed, `\dfrac` and `\tfrac`
 *    become `\frac`; runs of whitespace become one space;
 * 2. wrappers around the whole answer are removed, repeatedly, with surrounding whitespace:
 *    `$…$` and `$$…$$` (no unescaped `$` inside), `\(…\)`, `\[…\]`, `\text{…}`, `\textbf{…}`,
 *    `\mathrm{…}`, `\mbox{…}`, `\boxed{…}`, `\fbox{…}`, Markdown bold `**…**`, a currency `\$` in
 *    front, a currency `$` in front when the answer has no other unescaped `$`, and one trailing
 *    period;
 * 3. a number is rewritten exactly (BigInt rationals, never floating point): an optional sign, then
 *    digits (thousands commas allowed when every group has three digits) with an optional decimal
 *    part, or a fraction `a/b`, `\frac{a}{b}` or `\frac12` whose parts are such numbers (a sign in
 *    front of `\frac` or in its parts). The value is reduced; an integer is written plainly
 *    (`+007` → `7`, `-0` → `0`, `1,000` → `1000`, `\frac{4}{2}` → `2`); a value with a finite decimal
 *    expansion in decimal without trailing zeros (`42.50` → `42.5`, `\frac{1}{2}` → `0.5`); any
 *    other value as the reduced fraction `a/b` (`\frac{2}{6}` → `1/3`, and `0.333` stays apart from
 *    it). A zero denominator or a number of over 1000 digits is left as text;
 * 4. anything else stays the text of steps 1–2.
 *
 * Not removed: units (`5 cm` ≠ `5`), `%`, `x =` prefixes, `\text{}` inside a longer answer; letter
 * case is significant (`Yes` ≠ `yes`). An answer that normalizes to the empty string matches
 * nothing, and no answer found (null) matches nothing.
 *
 * @example
 * ```ts
 * const found = extractFinalAnswer("… so she has $\\boxed{1,250}$ apples.", "auto"); // "1,250"
 * answersMatch(found, "1250"); // true
 * answersMatch("\\frac{4}{8}", "0.5"); // true
 * ```
 *
 * @module
 */

/** How the final answer is found in a completion's text (see the module documentation). */
export type AnswerFormat = "auto" | "boxed" | "hashes" | "last-number";

/** Every {@link AnswerFormat}, in the order a help text lists them. */
export const ANSWER_FORMATS: readonly AnswerFormat[] = ["auto", "boxed", "hashes", "last-number"];

// One unsigned number as `last-number` reads it: comma-grouped (every group three digits, and not
// followed by another digit so that `1,2345` is not `1,234`), plain, or a bare fraction.
const NUMBER = String.raw`(?:\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)`;
// A signed number in running text; the `-` is a sign only where it cannot be a binary minus.
const NUMBER_IN_TEXT = new RegExp(
  String.raw`(?<![\w)\]}])-${NUMBER}|(?<![\w.])${NUMBER}`,
  "g",
);
const BOX_OPENER = /\\(?:boxed|fbox)\s*\{/g;
const ANSWER_MARKER = /\banswer\s*(?:is\b|:)/gi;
// An answer-is sentence that starts with a number, and what follows it.
const LEADING_NUMBER = new RegExp(
  String.raw`^(\$?-?${NUMBER}(?:\s*/\s*-?${NUMBER})?)\$?([\s\S]*)$`,
);

/**
 * The final answer in `text`, or null when there is none in that format.
 *
 * @example
 * ```ts
 * extractFinalAnswer("2 + 2 = 4\n#### 4", "hashes"); // "4"
 * extractFinalAnswer("so \\boxed{\\frac{1}{2}}", "boxed"); // "\\frac{1}{2}"
 * extractFinalAnswer("It costs -3.5 dollars, x2", "last-number"); // "-3.5"
 * ```
 */
export function extractFinalAnswer(text: string, format: AnswerFormat): string | null {
  switch (format) {
    case "boxed":
      return lastBoxed(text).content;
    case "hashes":
      return afterLastHashes(text);
    case "last-number":
      return lastNumber(text);
    case "auto":
      return autoAnswer(text);
    default:
      throw new Error(
        `unknown answer format '${format as string}' (expected one of ${
          ANSWER_FORMATS.join(", ")
        })`,
      );
  }
}

/** Whether `text` opens a `\boxed{` or `\fbox{` (closed or not). */
export function hasBoxedAnswer(text: string): boolean {
  BOX_OPENER.lastIndex = 0;
  return BOX_OPENER.test(text);
}

/**
 * Canonical form of an answer for comparison (the rules are in the module documentation).
 *
 * @example
 * ```ts
 * normalizeAnswer(" $1,234.50$. "); // "1234.5"
 * normalizeAnswer("\\dfrac{6}{4}"); // "1.5"
 * normalizeAnswer("\\text{Paris}"); // "Paris"
 * ```
 */
export function normalizeAnswer(answer: string): string {
  let s = answer
    .replace(/\\[,!;:]/g, "")
    .replace(/\\ /g, " ")
    .replace(/\{,\}/g, ",")
    .replace(/\\(?:left|right)(?![A-Za-z])/g, "")
    .replace(/\\[dt]frac(?![A-Za-z])/g, "\\frac")
    .replace(/\s+/g, " ")
    .trim();
  for (;;) {
    const unwrapped = unwrapOnce(s).trim();
    if (unwrapped === s) break;
    s = unwrapped;
  }
  const value = parseRational(s);
  return value === null ? s : formatRational(value[0], value[1]);
}

/**
 * Whether a predicted answer (null = none found) matches the reference answer: their
 * {@link normalizeAnswer} forms are equal and not empty.
 *
 * @example
 * ```ts
 * answersMatch("1,000", "1000"); // true
 * answersMatch(null, "1000"); // false
 * ```
 */
export function answersMatch(predicted: string | null, reference: string): boolean {
  if (predicted === null) return false;
  const want = normalizeAnswer(reference);
  return want !== "" && normalizeAnswer(predicted) === want;
}

/** The last top-level box: whether one was opened, and its trimmed content (null: none/unclosed). */
function lastBoxed(text: string): { found: boolean; content: string | null } {
  let found = false;
  let content: string | null = null;
  let from = 0;
  for (;;) {
    BOX_OPENER.lastIndex = from;
    const m = BOX_OPENER.exec(text);
    if (m === null) break;
    found = true;
    const start = m.index + m[0].length;
    const end = closingBrace(text, start);
    // An unclosed box runs to the end of the text, so it is the last one.
    if (end < 0) return { found, content: null };
    content = text.slice(start, end).trim();
    from = end + 1;
  }
  return { found, content: content === "" ? null : content };
}

/** Index of the `}` closing a group whose content starts at `start`, or -1. */
function closingBrace(text: string, start: number): number {
  let depth = 1;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") i++; // `\{`, `\}` and `\\` are not grouping
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

/** The trimmed rest of the line after the last `####`, or null. */
function afterLastHashes(text: string): string | null {
  const at = text.lastIndexOf("####");
  if (at < 0) return null;
  const line = text.slice(at + 4).split("\n", 1)[0].trim();
  return line === "" ? null : line;
}

function lastNumber(text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(NUMBER_IN_TEXT)) last = m[0];
  return last;
}

function autoAnswer(text: string): string | null {
  const box = lastBoxed(text);
  if (box.found) return box.content;
  const hashes = afterLastHashes(text);
  if (hashes !== null && parseRational(normalizeAnswer(hashes)) !== null) return hashes;
  let marker: RegExpExecArray | null = null;
  for (const m of text.matchAll(ANSWER_MARKER)) marker = m;
  if (marker !== null) return answerSentence(text.slice(marker.index + marker[0].length));
  return lastNumber(text);
}

/** The answer in the text after an `answer is` marker (rule 3 of `auto`). */
function answerSentence(rest: string): string | null {
  let s = rest.replace(/^[\s:]*/, "");
  const end = s.search(/\n|\.(?=\s|$)/);
  if (end >= 0) s = s.slice(0, end);
  s = s.trim().replace(/^\*\*\s*/, "").replace(/\s*\*\*$/, "").trim();
  if (s === "") return null;
  const m = LEADING_NUMBER.exec(s);
  if (m !== null && (m[2] === "" || /^[,;:!?]?\s+[A-Za-z]{2}|^[!?]$/.test(m[2]))) return m[1];
  return s;
}

/** `s` without one wrapper around the whole of it (rule 2 of {@link normalizeAnswer}), or `s`. */
function unwrapOnce(s: string): string {
  if (s.endsWith(".")) return s.slice(0, -1);
  // Each pair only when it is not closed and reopened inside: `$1$ and $2$` is not unwrapped.
  let m = /^\$\$((?:[^$\\]|\\[\s\S])*)\$\$$/.exec(s) ?? /^\$((?:[^$\\]|\\[\s\S])*)\$$/.exec(s) ??
    /^\\\(((?:(?!\\[()])[\s\S])*)\\\)$/.exec(s) ?? /^\\\[((?:(?!\\[[\]])[\s\S])*)\\\]$/.exec(s) ??
    /^\*\*((?:(?!\*\*)[\s\S])*)\*\*$/.exec(s);
  if (m !== null) return m[1];
  if (s.startsWith("\\$")) return s.slice(2); // a LaTeX currency sign: `\$18`
  if (/^\$(?:[^$\\]|\\[\s\S])*$/.test(s)) return s.slice(1); // a currency sign: `$18`
  m = /^\\(?:text|textbf|mathrm|mbox|boxed|fbox)\s*\{/.exec(s);
  if (m !== null && closingBrace(s, m[0].length) === s.length - 1) {
    return s.slice(m[0].length, -1);
  }
  return s;
}

const MAX_NUMBER_DIGITS = 1000;
// A signed decimal as normalizeAnswer reads it: thousands commas only in groups of three.
const DECIMAL = String.raw`([+-]?)\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)`;
const WHOLE_DECIMAL = new RegExp(`^${DECIMAL}$`);
const SLASH_FRACTION = new RegExp(`^${DECIMAL}\\s*/\\s*${DECIMAL}$`);
const LATEX_FRACTION = new RegExp(
  String.raw`^([+-]?)\s*\\frac\s*(?:\{\s*${DECIMAL}\s*\}|(\d))\s*(?:\{\s*${DECIMAL}\s*\}|(\d))$`,
);

/** The exact value of a numeric answer as a reduced `[numerator, denominator > 0]`, or null. */
function parseRational(s: string): [bigint, bigint] | null {
  if ((s.match(/\d/g)?.length ?? 0) > MAX_NUMBER_DIGITS) return null;
  let m = WHOLE_DECIMAL.exec(s);
  if (m !== null) return reduce(decimalValue(m[1], m[2]), [1n, 1n]);
  m = SLASH_FRACTION.exec(s);
  if (m !== null) return reduce(decimalValue(m[1], m[2]), decimalValue(m[3], m[4]));
  m = LATEX_FRACTION.exec(s);
  if (m !== null) {
    // Groups: sign, then each part as braced (sign, digits) or the `\frac12` shorthand (digit).
    const top = decimalValue(m[2], m[3] ?? m[4]);
    const bottom = decimalValue(m[5], m[6] ?? m[7]);
    if (m[1] === "-") top[0] = -top[0];
    return reduce(top, bottom);
  }
  return null;
}

/** `[numerator, denominator]` of a signed decimal's text (commas allowed, `5.` and `.5` too). */
function decimalValue(sign: string | undefined, body: string): [bigint, bigint] {
  const [whole, fraction = ""] = body.replace(/,/g, "").split(".");
  const num = BigInt((whole === "" ? "0" : whole) + fraction);
  return [sign === "-" ? -num : num, 10n ** BigInt(fraction.length)];
}

/** `top / bottom` reduced, denominator positive; null when `bottom` is zero. */
function reduce(top: [bigint, bigint], bottom: [bigint, bigint]): [bigint, bigint] | null {
  let num = top[0] * bottom[1];
  let den = top[1] * bottom[0];
  if (den === 0n) return null;
  if (den < 0n) [num, den] = [-num, -den];
  const g = gcd(num < 0n ? -num : num, den);
  return [num / g, den / g];
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** A reduced value as an integer, a finite decimal without trailing zeros, or `a/b`. */
function formatRational(num: bigint, den: bigint): string {
  if (den === 1n) return num.toString();
  let rest = den;
  let twos = 0n;
  let fives = 0n;
  while (rest % 2n === 0n) [rest, twos] = [rest / 2n, twos + 1n];
  while (rest % 5n === 0n) [rest, fives] = [rest / 5n, fives + 1n];
  if (rest !== 1n) return `${num}/${den}`;
  const places = twos > fives ? twos : fives;
  const scaled = num * (10n ** places / den);
  const digits = (scaled < 0n ? -scaled : scaled).toString().padStart(Number(places) + 1, "0");
  const point = digits.length - Number(places);
  return `${scaled < 0n ? "-" : ""}${digits.slice(0, point)}.${digits.slice(point)}`;
}
