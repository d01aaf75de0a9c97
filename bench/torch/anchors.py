"""The three anchor sizes of the speed comparison, mirrored from src/nn/anchors.ts.

tests/nn_config_test.ts checks that every line below matches the TypeScript definition, so edit
both together. All anchors: vocabulary 1,028 (the wordsort task's), RoPE theta 10,000, RMSNorm eps
1e-6, tied embeddings, QK-norm (Qwen3), no attention bias, max 256 positions.
"""

ANCHORS = {
    "0.8M": dict(vocab=1028, hidden=128, layers=4, heads=4, kv_heads=2, head_dim=32, intermediate=320, B=64, T=64),
    "5M": dict(vocab=1028, hidden=256, layers=6, heads=8, kv_heads=4, head_dim=32, intermediate=768, B=64, T=128),
    "29M": dict(vocab=1028, hidden=512, layers=9, heads=8, kv_heads=4, head_dim=64, intermediate=1536, B=32, T=256),
}

ROPE_THETA = 10000.0
NORM_EPS = 1e-6
MAX_POSITIONS = 256

# Sampling benchmark shape (src/nn/anchors.ts GENERATE_BENCH).
GENERATE = dict(batch=64, new_tokens=128, prompt_length=8)
