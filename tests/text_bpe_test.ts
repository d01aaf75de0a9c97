/**
 * The fast BPE model (heap over a linked list, pair hash, cache) against the textbook loop
 * (`referenceBpe`) on random words and adversarial merge tables: ranks out of build order,
 * duplicate pairs, one string reachable by several splits, long runs of one letter.
 */
import assert from "node:assert/strict";
import { BpeModel } from "../src/text/bpe.ts";
import { mergeRanks, referenceBpe } from "../src/text/bpe_reference.ts";
import { Rng } from "../src/util/rng.ts";

/** A random merge table over `alphabet`: pairs of existing tokens, shuffled ranks, duplicates. */
function randomMerges(rng: Rng, alphabet: string[], count: number): [string, string][] {
  const tokens = [...alphabet];
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const a = tokens[rng.int(tokens.length)];
    const b = tokens[rng.int(tokens.length)];
    if ((a + b).length > 8) continue;
    merges.push([a, b]);
    if (!tokens.includes(a + b)) tokens.push(a + b);
    if (rng.uniform() < 0.05) merges.push(merges[rng.int(merges.length)]); // a duplicate pair
  }
  // Shuffle part of the order, so that some merges rank before the merges making their parts.
  for (let i = merges.length - 1; i > 0; i--) {
    if (rng.uniform() < 0.3) {
      const j = rng.int(i + 1);
      [merges[i], merges[j]] = [merges[j], merges[i]];
    }
  }
  return merges;
}

function vocabOf(alphabet: string[], merges: [string, string][]): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const t of [...alphabet, ...merges.map(([a, b]) => a + b)]) {
    if (!vocab.has(t)) vocab.set(t, vocab.size);
  }
  return vocab;
}

function randomWord(rng: Rng, alphabet: string[], maxLength: number): string {
  const n = 1 + rng.int(maxLength);
  let s = "";
  // Runs of one letter half of the time: the case where overlapping equal pairs compete.
  const run = rng.uniform() < 0.5;
  for (let i = 0; i < n; i++) {
    s += alphabet[run && rng.uniform() < 0.8 ? 0 : rng.int(alphabet.length)];
  }
  return s;
}

Deno.test("BPE: fast merge loop equals the reference on random words and merge tables", () => {
  const rng = new Rng(7);
  for (let table = 0; table < 12; table++) {
    const alphabet = table % 2 === 0 ? ["a", "b", "c"] : ["a", "b", "c", "d", "é", "😀", "你"];
    const merges = randomMerges(rng, alphabet, 20 + rng.int(200));
    const vocab = vocabOf(alphabet, merges);
    const ranks = mergeRanks(merges);
    const model = new BpeModel({
      vocab,
      merges,
      ignoreMerges: false,
      unkToken: null,
      fuseUnk: false,
    });
    for (let k = 0; k < 150; k++) {
      const word = randomWord(rng, alphabet, k < 140 ? 24 : 300);
      const want = referenceBpe(word, ranks).map((t) => vocab.get(t)!);
      assert.deepEqual(
        Array.from(model.tokenize(word)),
        want,
        `table ${table}, ${JSON.stringify(word)}`,
      );
    }
  }
});

Deno.test("BPE: leftmost wins among equal ranks; duplicates take the later rank", () => {
  const vocab = vocabOf(["a", "b"], [["a", "a"], ["aa", "a"], ["a", "b"], ["b", "a"]]);
  // "a a" rank 0, "aa a" rank 1: aaa -> (aa)(a) -> (aaa)
  let merges: [string, string][] = [["a", "a"], ["aa", "a"]];
  const enc = (m: [string, string][], w: string) => {
    return Array.from(
      new BpeModel({ vocab, merges: m, ignoreMerges: false, unkToken: null, fuseUnk: false })
        .tokenize(w),
    );
  };
  assert.deepEqual(enc(merges, "aaa"), [vocab.get("aaa")!]);
  // aaaa -> (aa)(a)(a): "a a" (rank 0) again before "aa a" (rank 1) -> (aa)(aa).
  assert.deepEqual(enc(merges, "aaaa"), [vocab.get("aa")!, vocab.get("aa")!]);
  // aaaaa -> (aa)(a)(a)(a) -> (aa)(aa)(a) -> "aa a" (rank 1) -> (aa)(aaa).
  assert.deepEqual(enc(merges, "aaaaa"), [vocab.get("aa")!, vocab.get("aaa")!]);
  // "b a" rank 0 and "a b" rank 1 on "aba": (a)(ba); with the duplicate "b a" at rank 2 the
  // later rank counts and "a b" (rank 1) wins: (ab)(a).
  merges = [["b", "a"], ["a", "b"]];
  assert.deepEqual(enc(merges, "aba"), [vocab.get("a")!, vocab.get("ba")!]);
  merges = [["b", "a"], ["a", "b"], ["b", "a"]];
  assert.deepEqual(enc(merges, "aba"), [vocab.get("ab")!, vocab.get("a")!]);
  assert.deepEqual(
    referenceBpe("aba", mergeRanks(merges)).map((t) => vocab.get(t)),
    enc(merges, "aba"),
  );
});

Deno.test("BPE: ignore_merges returns a whole-vocabulary word as one token", () => {
  // "abc" is in the vocabulary, but the merges make (a)(bc) of it.
  const merges: [string, string][] = [["b", "c"], ["a", "b"], ["ab", "c"]];
  const vocab = vocabOf(["a", "b", "c"], merges);
  const make = (ignoreMerges: boolean) =>
    new BpeModel({ vocab, merges, ignoreMerges, unkToken: null, fuseUnk: false });
  assert.deepEqual(Array.from(make(false).tokenize("abc")), [vocab.get("a")!, vocab.get("bc")!]);
  assert.deepEqual(Array.from(make(true).tokenize("abc")), [vocab.get("abc")!]);
  // Not in the vocabulary: merged as usual.
  assert.deepEqual(Array.from(make(true).tokenize("abca")), [
    vocab.get("a")!,
    vocab.get("bc")!,
    vocab.get("a")!,
  ]);
});

Deno.test("BPE: a character without a token throws, or becomes unk (fused when asked)", () => {
  const vocab = new Map([["a", 0], ["<unk>", 1]]);
  const strict = new BpeModel({
    vocab,
    merges: [],
    ignoreMerges: false,
    unkToken: null,
    fuseUnk: false,
  });
  assert.throws(() => strict.tokenize("a😀"), /character "😀" \(U\+1F600\).*no unk_token/);
  const unk = new BpeModel({
    vocab,
    merges: [],
    ignoreMerges: false,
    unkToken: "<unk>",
    fuseUnk: false,
  });
  assert.deepEqual(Array.from(unk.tokenize("axyа")), [0, 1, 1, 1]);
  const fused = new BpeModel({
    vocab,
    merges: [],
    ignoreMerges: false,
    unkToken: "<unk>",
    fuseUnk: true,
  });
  assert.deepEqual(Array.from(fused.tokenize("axya")), [0, 1, 0]);
});
