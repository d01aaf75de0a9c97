"""Reference encodings from Hugging Face `tokenizers` for jackpot's tokenizer.json BPE (src/text/).

Trains small byte-level BPE tokenizers with `tokenizers` in the layouts jackpot supports, saves each
as DIR/<case>/tokenizer.json, encodes a fixed list of tricky strings (plus seeded random ones) and
writes the ids and decodings to DIR/expected.json. bench/text/check.ts then loads the same files
with jackpot's loader and compares every encoding and decoding.

Cases:
  qwen          Qwen2's layout: NFC, Sequence[Split(Qwen2 regex, isolated), ByteLevel(no regex)],
                ByteLevel decoder and post-processor; specials after the vocabulary, <think> plain.
  qwen-flags    the same with added tokens using lstrip, rstrip, single_word and normalized.
  qwen-ignore   the same as qwen with the model's ignore_merges set (Llama-3 style).
  gpt2          GPT-2's layout: ByteLevel(add_prefix_space, use_regex) alone, no normalizer.

    python3 bench/torch/tokenizer_check.py --dir /tmp/tokcheck
    deno run -A bench/text/check.ts --dir /tmp/tokcheck
"""

import argparse
import json
import os
import random

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

FRAGMENTS = [
    "the", "The", " the", "hello", " world", "token", "izer", "ing", "s", "a", " a", "xyz",
    "qu'il", "don't", "it's", "I'M", "'ll", "'VE", "'\u017f", "'d", "''", "\u2019s",
    "0", "7", "42", "2025", "3.14", "1,000", "\u0663", "\u216b",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r\n\r\n", "\n\n\n", " \n ", "\u00a0", "\u0085",
    "\u3000", "\u2028", "\ufeff",
    "\u4f60\u597d", "\u4e16\u754c", "\u65e5\u672c\u8a9e", "\ud55c\uad6d\uc5b4", "\u4e2d\u6587\uff0c\u6807\u70b9\u3002",
    "\u041f\u0440\u0438\u0432\u0435\u0442", "\u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u05e9\u05dc\u05d5\u05dd",
    "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F469\u200d\U0001F4BB", "\U0001F1EB\U0001F1F7", "\U0001D518\U0001D52B",
    "e\u0301", "a\u0308", "\u1100\u1161", "n\u0303o", "\u0301", "\u00c5", "\ufb01",
    "!", "?!", "...", "\u2014", "(x)", "[1]", "{}", "<", ">", "<|", "|>", "#", "$", "@user", "\\",
    "word", "swordfish", "<think>", "cafe\u0301",
]

TRICKY = [
    "", " ", "Hello world", "Hello, world! How's it going?", "IT'S DON'T WE'RE 'LL 'ſ",
    "x'll x 'll", "123 4567 89012", "$100.00", "a  b   c    ", "  leading", "trailing  ",
    "line1\nline2\r\nline3\r\n\r\n\n", "\t\ttabs\t", "a\u0085\u0085b", "a\ufeff\ufeffb",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\U0001F600\U0001F600 \U0001F44D\U0001F3FD", "caf\u00e9 cafe\u0301",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHi!<|im_end|>",
    "<|endoftext|><|endoftext|>", "a<|im_end|>b", "<|im_end", "<|im_start|><|im", "x <think> y",
    " <L>a  <L>b", "a<R>  \n b", " <LR> ", "a word b", "swordfish", "word_", "le caf\u00e9!",
    "def f(x):\n    return x + 1\n", "\u00a0\u00a0x", "e\u0301\u0301\u0301", "\u0000\u0001\u007f",
]


def corpus(seed, n):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(FRAGMENTS) if rng.random() > 0.1 else chr(0x20 + rng.randrange(0x2fff))
                           for _ in range(rng.randrange(1, 60))))
    return out


def random_strings(seed, n, inserts):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(1, 40)):
            r = rng.random()
            if r < 0.08:
                parts.append(rng.choice(inserts))
            elif r < 0.12:
                c = 0x20 + rng.randrange(0x2fff)
                parts.append(chr(c) if not 0xd800 <= c <= 0xdfff else "?")
            else:
                parts.append(rng.choice(FRAGMENTS))
        out.append("".join(parts))
    return out


def byte_level_step():
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


def train(layout, vocab_size=1000):
    tok = Tokenizer(models.BPE())
    if layout == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            byte_level_step(),
        ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(1, 3000), trainer)
    # As in Qwen: specials after the vocabulary, then plain added tokens.
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ["<think>", "</think>"]])
    return tok


def build(case):
    if case == "qwen":
        return train("qwen")
    if case == "gpt2":
        return train("gpt2")
    if case == "qwen-flags":
        tok = train("qwen")
        tok.add_special_tokens([AddedToken("<L>", lstrip=True, normalized=False),
                                AddedToken("<LR>", lstrip=True, rstrip=True, normalized=False)])
        tok.add_tokens([AddedToken("<R>", rstrip=True, normalized=False),
                        AddedToken("word", single_word=True, normalized=False),
                        AddedToken("cafe\u0301", normalized=True),
                        AddedToken("<|im", normalized=False)])
        return tok
    if case == "qwen-ignore":
        spec = json.loads(train("qwen").to_str())
        spec["model"]["ignore_merges"] = True
        return Tokenizer.from_str(json.dumps(spec))
    raise ValueError(case)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="folder for <case>/tokenizer.json and expected.json")
    ap.add_argument("--random", type=int, default=300, help="random strings per case")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    cases = []
    for name in ["qwen", "qwen-flags", "qwen-ignore", "gpt2"]:
        tok = build(name)
        folder = os.path.join(args.dir, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        tok = Tokenizer.from_file(path)  # encode with what was saved, as jackpot reads it
        inserts = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<L>", "<LR>",
                   "<R>", "word", "cafe\u0301", "<|im"]
        texts = TRICKY + random_strings(7, args.random, inserts)
        encodings = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            entry = {"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                     "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
            if hasattr(tok, "encode_special_tokens"):
                tok.encode_special_tokens = True
                entry["ids_no_split"] = tok.encode(text, add_special_tokens=False).ids
                tok.encode_special_tokens = False
            encodings.append(entry)
        size = tok.get_vocab_size(with_added_tokens=True)
        id_decodes = [tok.decode([i], skip_special_tokens=False) for i in range(size)]
        cases.append({"name": name, "tokenizer": f"{name}/tokenizer.json", "vocab_size": size,
                      "encodings": encodings, "id_decodes": id_decodes})
        print(f"{name}: vocab {size}, {len(encodings)} strings")
    out = {"tokenizers_version": tokenizers.__version__, "cases": cases}
    with open(os.path.join(args.dir, "expected.json"), "w") as f:
        json.dump(out, f)
    print(f"wrote {os.path.join(args.dir, 'expected.json')} (tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
