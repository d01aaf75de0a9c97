/**
 * `BpeTokenizer`: a byte-level BPE tokenizer read from a Hugging Face tokenizer.json (see
 * `tokenizer_json.ts` for what the loader accepts), encoding and decoding as `tokenizers` does.
 *
 * Encoding: added tokens are cut out of the raw text (`added.ts`); the rest is normalized (NFC for
 * Qwen), normalized added tokens are cut out of that, the pre-tokenizer splits it into pieces and
 * maps them to the byte-level alphabet (`pretokenize.ts`), and the BPE model merges each piece
 * (`bpe.ts`). Decoding concatenates the bytes of the tokens and reads them as UTF-8, an invalid or
 * incomplete sequence becoming U+FFFD (Rust's `from_utf8_lossy`, which `TextDecoder` matches).
 *
 * @module
 */
import { AddedToken, AddedTokenMatcher } from "./added.ts";
import { BpeModel } from "./bpe.ts";
import { byteLevel, tokenStringBytes } from "./bytes.ts";
import { NormalizationForm, normalize, preTokenize, PreTokenizerStep } from "./pretokenize.ts";

/** Everything a `BpeTokenizer` is built from; made by `loadTokenizerJson`. */
export interface TokenizerParts {
  /** Id → token string as `id_to_token` gives it (added tokens in their decoded form); holes are undefined. */
  strings: (string | undefined)[];
  /** Token string → id, model vocabulary and added tokens. */
  ids: ReadonlyMap<string, number>;
  model: BpeModel;
  added: readonly AddedToken[];
  normalizer: readonly NormalizationForm[];
  preTokenizer: readonly PreTokenizerStep[];
  /** Special-purpose ids (null where the tokenizer has none). */
  specials: SpecialIds;
  /** How many merged words the cache keeps (0: no cache). */
  cacheCapacity: number;
}

/** The special-purpose ids of a tokenizer and where they came from. */
export interface SpecialIds {
  /** Id prepended to prompts, or null when prompts start without one (Qwen). */
  bosId: number | null;
  /** End-of-sequence id: the one a supervised answer ends with. */
  eosId: number | null;
  /** Id that pads batches (any id works; HF falls back to eos). */
  padId: number | null;
  /** Every id that ends generation (eos first), e.g. Qwen instruct: `<|im_end|>`, `<|endoftext|>`. */
  stopIds: readonly number[];
}

/** Options of `BpeTokenizer.encode`. */
export interface EncodeOptions {
  /**
   * Cut special added tokens (`<|im_start|>` ...) out of the text, as `tokenizers` does by
   * default (true). False encodes their text as ordinary text (`encode_special_tokens`), which is
   * what untrusted text should get; non-special added tokens are cut out either way.
   */
  splitSpecial?: boolean;
}

const lenientUtf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
/** Pieces longer than this (UTF-16 units) are not cached (`tokenizers`' MAX_LENGTH is 256). */
const CACHE_MAX_PIECE = 256;

/** A growable list of ids. */
class IdBuffer {
  ids = new Int32Array(1024);
  length = 0;

  pushAll(more: Int32Array): void {
    if (this.length + more.length > this.ids.length) {
      const grown = new Int32Array(2 * (this.length + more.length));
      grown.set(this.ids.subarray(0, this.length));
      this.ids = grown;
    }
    // A loop beats set() for the one-to-three ids of a typical word.
    if (more.length < 8) {
      for (let k = 0; k < more.length; k++) {
        this.ids[this.length + k] = more[k];
      }
    } else this.ids.set(more, this.length);
    this.length += more.length;
  }

  push(id: number): void {
    if (this.length === this.ids.length) this.pushAll(Int32Array.of(id));
    else this.ids[this.length++] = id;
  }

  result(): Int32Array {
    return this.ids.slice(0, this.length);
  }
}

/**
 * The regex of a pre-tokenizer that is one regex split (Isolated) followed by the plain byte map:
 * Qwen2's Sequence[Split, ByteLevel(use_regex false)] or GPT-2's ByteLevel(use_regex true)
 * without a prefix space. Encoding then caches words by their raw text and skips the byte map
 * for every cached word; any other pre-tokenizer takes the general path.
 */
function regexThenBytes(steps: readonly PreTokenizerStep[]): RegExp | null {
  const [a, b] = steps;
  if (
    steps.length === 2 && a.kind === "split" && a.behavior === "Isolated" && !a.invert &&
    b.kind === "byteLevel" && !b.addPrefixSpace && b.regex === null
  ) return a.regex;
  if (steps.length === 1 && a.kind === "byteLevel" && !a.addPrefixSpace) return a.regex;
  return null;
}

/**
 * A byte-level BPE tokenizer (Qwen2, Qwen2.5, Qwen3, GPT-2 style tokenizer.json).
 *
 * @example
 * ```ts
 * const tok = await readTokenizer("models/Qwen2.5-0.5B-Instruct");
 * const ids = tok.encode("<|im_start|>user\nHi<|im_end|>");
 * tok.decode(ids, { skipSpecial: true }); // "user\nHi"
 * ```
 */
export class BpeTokenizer {
  /** One more than the largest id (model vocabulary and added tokens); ids without a token are holes. */
  readonly vocabSize: number;
  /** Id prepended to prompts, or null (Qwen prompts start without one). */
  readonly bosId: number | null;
  /** End-of-sequence id, or null when neither the file nor the configs name one. */
  readonly eosId: number | null;
  /** Padding id (`pad_token`, else eos), or null. */
  readonly padId: number | null;
  /** Every id that ends generation, eos first. */
  readonly stopIds: readonly number[];
  readonly #parts: TokenizerParts;
  readonly #raw: AddedTokenMatcher;
  readonly #normalized: AddedTokenMatcher;
  readonly #special: Uint8Array;
  readonly #bytes: (Uint8Array | undefined)[] = [];
  readonly #cache = new Map<string, Int32Array>();
  readonly #split: RegExp | null;

  constructor(parts: TokenizerParts) {
    this.#parts = parts;
    this.vocabSize = parts.strings.length;
    this.bosId = parts.specials.bosId;
    this.eosId = parts.specials.eosId;
    this.padId = parts.specials.padId;
    this.stopIds = parts.specials.stopIds;
    this.#raw = new AddedTokenMatcher(parts.added.filter((t) => !t.normalized), (t) => t.content);
    this.#normalized = new AddedTokenMatcher(
      parts.added.filter((t) => t.normalized),
      (t) => normalize(t.content, parts.normalizer),
    );
    this.#split = regexThenBytes(parts.preTokenizer);
    this.#special = new Uint8Array(this.vocabSize);
    for (const t of parts.added) if (t.special) this.#special[t.id] = 1;
  }

  /**
   * Token ids of `text`: special added tokens in it become their ids (see `EncodeOptions`); no
   * bos/eos is added. Any text is encodable (every byte has a token).
   */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    const skipSpecial = options.splitSpecial === false;
    const out = new IdBuffer();
    const normalizer = this.#parts.normalizer;
    for (const raw of this.#raw.split(text, skipSpecial)) {
      if (raw.id >= 0) {
        out.push(raw.id);
        continue;
      }
      for (const seg of this.#normalized.split(normalize(raw.text, normalizer), skipSpecial)) {
        if (seg.id >= 0) out.push(seg.id);
        else this.#encodePieces(seg.text, out);
      }
    }
    return out.result();
  }

  /** Pre-tokenizes normalized text and appends the ids of its pieces. */
  #encodePieces(text: string, out: IdBuffer): void {
    const regex = this.#split;
    if (regex === null) {
      for (const piece of preTokenize(text, this.#parts.preTokenizer)) {
        this.#piece(piece, false, out);
      }
      return;
    }
    // splitPieces(text, regex, "Isolated", false) without the intermediate lists.
    let prev = 0;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      const start = m.index;
      const end = start + m[0].length;
      if (prev < start) this.#piece(text.slice(prev, start), true, out);
      if (end > start) this.#piece(m[0], true, out);
      else {
        const c = text.charCodeAt(start);
        regex.lastIndex = start + (c >= 0xd800 && c <= 0xdbff ? 2 : 1);
        if (start >= text.length) break;
      }
      prev = end;
    }
    if (prev < text.length) this.#piece(text.slice(prev), true, out);
  }

  /** Appends the ids of one piece (`raw`: not yet in the byte-level alphabet), cached. */
  #piece(piece: string, raw: boolean, out: IdBuffer): void {
    let ids = this.#cache.get(piece);
    if (ids === undefined) {
      ids = this.#parts.model.tokenize(raw ? byteLevel(piece) : piece);
      const capacity = this.#parts.cacheCapacity;
      if (capacity > 0 && piece.length <= CACHE_MAX_PIECE) {
        // A full cache starts over: cheaper than LRU bookkeeping, and recent words refill it.
        if (this.#cache.size >= capacity) this.#cache.clear();
        this.#cache.set(piece, ids);
      }
    }
    out.pushAll(ids);
  }

  /**
   * Text of `ids`: the tokens' bytes read as UTF-8, an invalid or incomplete sequence (a token
   * holding part of a character) read as U+FFFD, so decoding one id of a stream never throws.
   * `skipSpecial` drops special added tokens. An id without a token throws a RangeError
   * (`tokenizers` skips it silently).
   */
  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      if (options.skipSpecial && this.isSpecial(ids[i])) continue;
      const b = this.tokenBytes(ids[i]);
      parts.push(b);
      n += b.length;
    }
    const all = new Uint8Array(n);
    let at = 0;
    for (const b of parts) all.set(b, at), at += b.length;
    return lenientUtf8.decode(all);
  }

  /**
   * The string of one token as the file spells it (`id_to_token`): byte-level characters for
   * model tokens (`"Ġhello"`), the content for added tokens (`"<|im_end|>"`).
   */
  tokenString(id: number): string {
    this.#check(id);
    return this.#parts.strings[id]!;
  }

  /** The bytes one token stands for (what `decode` concatenates). */
  tokenBytes(id: number): Uint8Array {
    this.#check(id);
    return this.#bytes[id] ??= tokenStringBytes(this.#parts.strings[id]!);
  }

  /** The id of a token string (`"<|im_end|>"`, `"Ġthe"`), or undefined. */
  tokenId(token: string): number | undefined {
    return this.#parts.ids.get(token);
  }

  /** Whether `id` is a special added token (dropped by `decode` with `skipSpecial`). */
  isSpecial(id: number): boolean {
    this.#check(id);
    return this.#special[id] === 1;
  }

  /** Forgets the BPE cache of merged words (for benchmarks, or to free its memory). */
  clearCache(): void {
    this.#cache.clear();
  }

  /** A decoder for a stream of ids that returns text as soon as its characters are complete. */
  streamDecoder(options: { skipSpecial?: boolean } = {}): StreamDecoder {
    return new StreamDecoder(this, options.skipSpecial ?? false);
  }

  #check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    if (this.#parts.strings[id] === undefined) {
      throw new RangeError(`token id ${id} has no token (a hole in the vocabulary)`);
    }
  }
}

/**
 * Incremental decoding for sampling: `push(id)` returns the text completed by that token (""
 * while a character's bytes are still arriving), `flush()` what is left (U+FFFD for an incomplete
 * character). The pieces concatenate to `decode` of all the ids.
 *
 * @example
 * ```ts
 * const stream = tok.streamDecoder();
 * for (const id of ids) Deno.stdout.writeSync(new TextEncoder().encode(stream.push(id)));
 * ```
 */
export class StreamDecoder {
  readonly #tokenizer: BpeTokenizer;
  readonly #skipSpecial: boolean;
  readonly #utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  constructor(tokenizer: BpeTokenizer, skipSpecial: boolean) {
    this.#tokenizer = tokenizer;
    this.#skipSpecial = skipSpecial;
  }

  /** The text completed by `id`. */
  push(id: number): string {
    if (this.#skipSpecial && this.#tokenizer.isSpecial(id)) return "";
    return this.#utf8.decode(this.#tokenizer.tokenBytes(id), { stream: true });
  }

  /** The rest: U+FFFD for bytes of an unfinished character; the decoder starts afresh. */
  flush(): string {
    return this.#utf8.decode();
  }
}
