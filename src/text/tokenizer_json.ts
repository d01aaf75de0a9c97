/**
 * Reading a Hugging Face tokenizer.json into a `BpeTokenizer`.
 *
 * Accepted (what Qwen2, Qwen2.5, Qwen3 and GPT-2 style files use):
 * - `normalizer`: null, `NFC`, `NFD`, `NFKC`, `NFKD`, or a `Sequence` of those;
 * - `pre_tokenizer`: `Split` (Regex in Oniguruma syntax, or String; any behavior; invert) and
 *   `ByteLevel` (add_prefix_space, use_regex), alone or in a `Sequence`; a ByteLevel step is
 *   required (only byte-level BPE is supported);
 * - `model`: `BPE` with `vocab`, `merges` (`"a b"` strings or `["a", "b"]` pairs),
 *   `ignore_merges`, `unk_token`, `fuse_unk`; dropout null or 0; no byte fallback; no subword
 *   prefix or suffix (empty strings are accepted);
 * - `decoder`: `ByteLevel`; `post_processor`: null or `ByteLevel` (it only moves offsets);
 * - `added_tokens` with `single_word`, `lstrip`, `rstrip`, `normalized`, `special`;
 * - `truncation` null; `padding` is ignored (it only matters for batches).
 *
 * Anything else is refused with an error naming the file and the component, never tokenized in
 * some other way.
 *
 * @module
 */
import { AddedToken } from "./added.ts";
import { BpeModel } from "./bpe.ts";
import { literalRegExp, onigurumaRegExp } from "./regex.ts";
import {
  gpt2RegExp,
  NormalizationForm,
  normalize,
  PreTokenizerStep,
  SplitBehavior,
} from "./pretokenize.ts";
import { BpeTokenizer, SpecialIds } from "./tokenizer.ts";

/** A token named by its string or its id. */
export type TokenRef = string | number;

/** Which tokens serve as bos, eos, pad and stop tokens (see `readTokenizer` for the defaults). */
export interface SpecialTokenChoice {
  /** Prepended to prompts; null or absent: none. */
  bos?: TokenRef | null;
  /** End of sequence; absent: `<|endoftext|>` when it is a special added token, else none. */
  eos?: TokenRef | null;
  /** Padding; absent: the eos token. */
  pad?: TokenRef | null;
  /** Further ids that end generation (eos is always one). */
  stop?: readonly TokenRef[];
}

/** Options of `loadTokenizerJson`. */
export interface LoadOptions {
  /** Names the file in error messages (default "tokenizer.json"). */
  source?: string;
  /** Special-purpose tokens. */
  specials?: SpecialTokenChoice;
  /** How many merged words the BPE cache keeps (default 50 000; 0 disables it). */
  cacheCapacity?: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const NORMALIZATION_FORMS = ["NFC", "NFD", "NFKC", "NFKD"];
const BEHAVIORS = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"];

/**
 * Builds a `BpeTokenizer` from the text (or parsed object) of a tokenizer.json.
 * Throws an Error naming the file and the offending component for anything unsupported or
 * malformed.
 *
 * @example
 * ```ts
 * const tok = loadTokenizerJson(await Deno.readTextFile("tokenizer.json"));
 * tok.decode(tok.encode("Hello, world")); // "Hello, world"
 * ```
 */
export function loadTokenizerJson(json: string | object, options: LoadOptions = {}): BpeTokenizer {
  const source = options.source ?? "tokenizer.json";
  const fail = (what: string): never => {
    throw new Error(`${source}: ${what}`);
  };
  let file: unknown = json;
  if (typeof json === "string") {
    try {
      file = JSON.parse(json);
    } catch (e) {
      fail(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObject(file)) return fail("not a JSON object");
  if (file.version !== undefined && file.version !== "1.0") {
    fail(`unknown tokenizer.json version ${JSON.stringify(file.version)} (expected "1.0")`);
  }
  if (file.truncation !== undefined && file.truncation !== null) {
    fail("truncation is set; it would cut encodings, which this tokenizer does not do");
  }

  const normalizer = parseNormalizer(file.normalizer ?? null, fail);
  const preTokenizer = parsePreTokenizer(file.pre_tokenizer ?? null, fail);
  checkDecoder(file.decoder ?? null, fail);
  const post = file.post_processor ?? null;
  if (post !== null && !(isObject(post) && post.type === "ByteLevel")) {
    fail(
      `post_processor type ${
        JSON.stringify(isObject(post) ? post.type : post)
      } is not supported (only null or ByteLevel, which adds no tokens)`,
    );
  }

  if (file.model === undefined || file.model === null) fail("has no model");
  const { vocab, merges, spec } = parseModel(file.model, fail);
  const model = new BpeModel({ vocab, merges, ...spec });
  const added = parseAddedTokens(file.added_tokens ?? [], vocab, normalizer, fail);

  const ids = new Map(vocab);
  let size = 0;
  for (const id of vocab.values()) size = Math.max(size, id + 1);
  for (const t of added) size = Math.max(size, t.id + 1);
  const strings: (string | undefined)[] = new Array(size).fill(undefined);
  for (const [s, id] of vocab) strings[id] = s;
  for (const t of added) {
    // Decoding shows a normalized added token in its normalized form, as tokenizers does.
    strings[t.id] = t.normalized ? normalize(t.content, normalizer) : t.content;
    ids.set(t.content, t.id);
  }
  const specials = resolveSpecials(options.specials ?? {}, ids, added, size, fail);
  const cacheCapacity = options.cacheCapacity ?? 50_000;
  return new BpeTokenizer({
    strings,
    ids,
    model,
    added,
    normalizer,
    preTokenizer,
    specials,
    cacheCapacity,
  });
}

type Fail = (what: string) => never;

function typeOf(v: unknown): string {
  return JSON.stringify(isObject(v) ? v.type : v);
}

function parseNormalizer(n: unknown, fail: Fail): NormalizationForm[] {
  if (n === null) return [];
  if (!isObject(n)) return fail(`normalizer ${JSON.stringify(n)} is not an object`);
  if (n.type === "Sequence") {
    if (!Array.isArray(n.normalizers)) fail("normalizer Sequence has no normalizers list");
    return (n.normalizers as unknown[]).flatMap((m) => parseNormalizer(m, fail));
  }
  if (typeof n.type === "string" && NORMALIZATION_FORMS.includes(n.type)) {
    return [n.type as NormalizationForm];
  }
  return fail(
    `normalizer type ${typeOf(n)} is not supported (only NFC, NFD, NFKC, NFKD, Sequence)`,
  );
}

function parsePreTokenizer(p: unknown, fail: Fail): PreTokenizerStep[] {
  if (p === null) {
    return fail(
      "has no pre_tokenizer; only byte-level BPE (a ByteLevel pre-tokenizer) is supported",
    );
  }
  const steps = parseSteps(p, fail);
  if (!steps.some((s) => s.kind === "byteLevel")) {
    fail("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
  }
  return steps;
}

function parseSteps(p: unknown, fail: Fail): PreTokenizerStep[] {
  if (!isObject(p)) return fail(`pre_tokenizer ${JSON.stringify(p)} is not an object`);
  switch (p.type) {
    case "Sequence":
      if (!Array.isArray(p.pretokenizers)) fail("pre_tokenizer Sequence has no pretokenizers list");
      return (p.pretokenizers as unknown[]).flatMap((q) => parseSteps(q, fail));
    case "ByteLevel":
      return [{
        kind: "byteLevel",
        addPrefixSpace: p.add_prefix_space === true,
        // use_regex defaults to true in tokenizers.
        regex: p.use_regex === false ? null : gpt2RegExp(),
      }];
    case "Split": {
      const pattern = p.pattern;
      let regex: RegExp;
      if (isObject(pattern) && typeof pattern.Regex === "string") {
        try {
          regex = onigurumaRegExp(pattern.Regex);
        } catch (e) {
          return fail(`pre_tokenizer Split: ${(e as Error).message}`);
        }
      } else if (isObject(pattern) && typeof pattern.String === "string") {
        regex = literalRegExp(pattern.String);
      } else return fail(`pre_tokenizer Split has a bad pattern ${JSON.stringify(pattern)}`);
      if (typeof p.behavior !== "string" || !BEHAVIORS.includes(p.behavior)) {
        fail(`pre_tokenizer Split has an unknown behavior ${JSON.stringify(p.behavior)}`);
      }
      return [{
        kind: "split",
        regex,
        behavior: p.behavior as SplitBehavior,
        invert: p.invert === true,
      }];
    }
    default:
      return fail(
        `pre_tokenizer type ${typeOf(p)} is not supported (only Split, ByteLevel, Sequence)`,
      );
  }
}

function checkDecoder(d: unknown, fail: Fail): void {
  if (isObject(d) && d.type === "ByteLevel") return;
  if (isObject(d) && d.type === "Sequence" && Array.isArray(d.decoders)) {
    if (d.decoders.length === 1) return checkDecoder(d.decoders[0], fail);
  }
  fail(`decoder type ${typeOf(d)} is not supported (only ByteLevel)`);
}

function parseModel(m: unknown, fail: Fail) {
  if (!isObject(m)) return fail("model is not an object");
  if (m.type !== "BPE") return fail(`model type ${typeOf(m)} is not supported (only BPE)`);
  if (!isObject(m.vocab)) return fail("model BPE has no vocab object");
  const vocab = new Map<string, number>();
  const owner = new Map<number, string>();
  for (const [s, id] of Object.entries(m.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      fail(`model vocab entry ${JSON.stringify(s)} has a bad id ${JSON.stringify(id)}`);
    }
    if (owner.has(id as number)) {
      fail(
        `model vocab gives id ${id} to both ${JSON.stringify(owner.get(id as number))} and ${
          JSON.stringify(s)
        }`,
      );
    }
    owner.set(id as number, s);
    vocab.set(s, id as number);
  }
  if (!Array.isArray(m.merges)) return fail("model BPE has no merges list");
  const merges: [string, string][] = [];
  let rank = 0;
  for (const entry of m.merges as unknown[]) {
    let pair: [string, string];
    if (typeof entry === "string") {
      if (entry.startsWith("#version")) continue;
      const parts = entry.split(" ");
      if (parts.length !== 2) {
        return fail(
          `merge ${rank} ${JSON.stringify(entry)} is not two tokens separated by a space`,
        );
      }
      pair = [parts[0], parts[1]];
    } else if (
      Array.isArray(entry) && entry.length === 2 && typeof entry[0] === "string" &&
      typeof entry[1] === "string"
    ) {
      pair = [entry[0], entry[1]];
    } else return fail(`merge ${rank} ${JSON.stringify(entry)} is neither "a b" nor ["a", "b"]`);
    for (const t of [pair[0], pair[1], pair[0] + pair[1]]) {
      if (!vocab.has(t)) {
        fail(
          `merge ${rank} ${JSON.stringify(pair)} references ${
            JSON.stringify(t)
          }, which is not in the vocabulary`,
        );
      }
    }
    merges.push(pair);
    rank++;
  }
  if (m.dropout !== undefined && m.dropout !== null && m.dropout !== 0) {
    fail(`model BPE has dropout ${m.dropout}; only deterministic BPE (dropout null) is supported`);
  }
  if (m.byte_fallback === true) fail("model BPE byte_fallback is not supported");
  for (const key of ["continuing_subword_prefix", "end_of_word_suffix"]) {
    if (m[key] !== undefined && m[key] !== null && m[key] !== "") {
      fail(`model BPE ${key} ${JSON.stringify(m[key])} is not supported`);
    }
  }
  const unk = m.unk_token ?? null;
  if (unk !== null && (typeof unk !== "string" || !vocab.has(unk))) {
    fail(`model BPE unk_token ${JSON.stringify(unk)} is not in the vocabulary`);
  }
  return {
    vocab,
    merges,
    spec: {
      ignoreMerges: m.ignore_merges === true,
      unkToken: unk as string | null,
      fuseUnk: m.fuse_unk === true,
    },
  };
}

/**
 * The added tokens with the ids `tokenizers` gives them: the model's id when the content is in
 * the vocabulary, else the next id after the vocabulary, in file order. A file whose `id` differs
 * is refused (`tokenizers` would warn and renumber).
 */
function parseAddedTokens(
  list: unknown,
  vocab: ReadonlyMap<string, number>,
  normalizer: readonly NormalizationForm[],
  fail: Fail,
): AddedToken[] {
  if (!Array.isArray(list)) return fail("added_tokens is not a list");
  const out: AddedToken[] = [];
  const byContent = new Map<string, AddedToken>();
  let next = vocab.size;
  list.forEach((t: unknown, k) => {
    if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id)) {
      fail(`added_tokens[${k}] needs a string content and an integer id`);
    }
    const o = t as Json;
    const content = o.content as string;
    if (content.length === 0) return;
    const flag = (key: string, fallback: boolean): boolean => {
      if (o[key] === undefined) return fallback;
      if (typeof o[key] !== "boolean") fail(`added_tokens[${k}].${key} is not a boolean`);
      return o[key] as boolean;
    };
    const special = flag("special", false);
    const id = byContent.get(content)?.id ?? vocab.get(content) ?? next++;
    if (id !== o.id) {
      fail(
        `added token ${JSON.stringify(content)} has id ${o.id} in the file, but tokenizers ` +
          `would give it id ${id} (model vocabulary of ${vocab.size}, added tokens in file order)`,
      );
    }
    const token: AddedToken = {
      id,
      content,
      special,
      singleWord: flag("single_word", false),
      lstrip: flag("lstrip", false),
      rstrip: flag("rstrip", false),
      normalized: flag("normalized", !special),
    };
    if (token.normalized && normalize(content, normalizer).length === 0) {
      fail(`added token ${JSON.stringify(content)} normalizes to nothing`);
    }
    const old = byContent.get(content);
    if (old) out.splice(out.indexOf(old), 1);
    byContent.set(content, token);
    out.push(token);
  });
  return out;
}

function resolveSpecials(
  choice: SpecialTokenChoice,
  ids: ReadonlyMap<string, number>,
  added: readonly AddedToken[],
  size: number,
  fail: Fail,
): SpecialIds {
  const idOf = (ref: TokenRef | null | undefined, role: string): number | null => {
    if (ref === null || ref === undefined) return null;
    if (typeof ref === "number") {
      if (!Number.isInteger(ref) || ref < 0 || ref >= size) {
        fail(`${role} id ${ref} is outside the vocabulary [0, ${size})`);
      }
      return ref;
    }
    const id = ids.get(ref);
    if (id === undefined) {
      return fail(`${role} token ${JSON.stringify(ref)} is not in the vocabulary`);
    }
    return id;
  };
  const endoftext = added.find((t) => t.special && t.content === "<|endoftext|>");
  const eosId = choice.eos !== undefined ? idOf(choice.eos, "eos") : endoftext?.id ?? null;
  const padId = choice.pad !== undefined ? idOf(choice.pad, "pad") : eosId;
  const stopIds: number[] = eosId === null ? [] : [eosId];
  for (const s of choice.stop ?? []) {
    const id = idOf(s, "stop")!;
    if (!stopIds.includes(id)) stopIds.push(id);
  }
  return { bosId: idOf(choice.bos, "bos"), eosId, padId, stopIds };
}
