#!/usr/bin/env bash
# Everything a GPU host measures, in stages that each fit one 10-minute device command:
#   tests   the GPU kernels against their float64 references, on the real adapter
#   torch   the PyTorch reference scripts (bench/torch/*.py), eager and torch.compile
#   ours    deno task bench at the issue shapes, with the PyTorch JSON for ratios
#   profile the training step and a sampling batch of each anchor, kernel by kernel (bench/nn/profile.ts)
#   sweep   the candidates awaiting an H100 verdict, in one call (~6.5 min): their tests on the real
#           adapter, the row kernels (bench/tensor), the decode matmuls against PyTorch
#           (bench/matmul --decode), the OBRS row-pass variants (bench/obrs/sweep.sh), then the
#           profile; each one's decision rule is in BENCHMARKS.md, "Next GPU run"
#   fusion  the fused ops of the no-GPU sessions, in one call (~6 min): their tests on the real
#           adapter, the decode step's gate + down projection fused or not (bench/matmul/
#           swiglu_down.ts), composed against fused v1 and v2 attention at the anchors' shapes
#           (bench/attention), then the training step and sampling with --attention composed and
#           auto (bench/nn/main.ts): the A/B that sets the "auto" policy in
#           src/autograd/attention.ts (rule in BENCHMARKS.md, "Next GPU run")
#   defer   (~4 min, then interop) the add-RMS decode fusion's tests and A/B (bench/matmul/
#           add_rms_qkv.ts), then the training step with no split-K partials deferred and with all of them
#           (--defer-split-mb 0 / 64) against fusion's default run: the rule for
#           GRAD_SUMS_SPLIT_MAX_BYTES is in BENCHMARKS.md ("Next GPU run")
#   interop (~1 min) checkpoints against Hugging Face transformers, both ways: jackpot's saved
#           models loaded by from_pretrained, transformers' save_pretrained folders loaded by
#           jackpot, logits compared (bench/interop/hf.ts, bench/torch/hf_interop.py); then the
#           tokenizer against HF tokenizers (bench/torch/tokenizer_check.py, bench/text/check.ts);
#           `defer` runs it too
#   rl      (~5 min) the RL losses' tests on the real adapter, the policy loss at B = 64, T = 1024,
#           the distillation KL at 4,096 × 151,936 and the tiny joint step (bench/rl), then the
#           streamed loader's host memory on a 0.6B stand-in folder against the whole-file load
#           (bench/bigvocab/load.ts); the trainer's tests and seconds per `jackpot rl` iteration
#   rl-sweep (~8 min) jackpot sweep's tests on the real adapter, then the fig4 preset (12 runs) at
#           30 and at 100 iterations, timed, with its final and comparison tables
#   rl-text (~6 min) the text task's tests on the real adapter, then `jackpot rl --task text` at
#           Qwen3-0.6B's real shapes: a 28-layer stand-in folder as the policy and a 4-layer one of
#           the same vocabulary as the rollout model (bench/bigvocab/hub_folder.ts), timed per
#           iteration, with the iterations table kept
#   memory  (~8 min) bench/memory/rl_memory.ts at mini-batches of 8 × 256 and 8 × 512 completion
#           rows (1–3 blocks of Qwen3-1.7B/0.6B widths): the per-row GPU memory the CPU adapter
#           could not resolve, extrapolated to the 28 + 28-block pair
#   all     tests, torch, ours in order
# Usage (from the repository root, after `source .device/enter.sh` on a host without network):
#   bash bench/device/run.sh STAGE [OUT_DIR]
# Results go to OUT_DIR (default $OUT, else device-out/): a log per stage and results.tar.gz with
# every JSON file (one archive, because a device call returns at most 8 files).
# LIMIT_S (default 170) caps each command in seconds, so that one slow step cannot use up a
# device call and the archive is still written; `timeout` exits 124 for a command it stopped.
set -uo pipefail
limit=${LIMIT_S:-170}
stage=${1:?usage: bash bench/device/run.sh tests|torch|ours|profile|sweep|fusion|defer|interop|rl|rl-sweep|rl-text|memory|all [OUT_DIR]}
out=${2:-${OUT:-device-out}}
work=$(mktemp -d)
mkdir -p "$out" "$work/torch" "$work/bench"
[ -f "$out/results.tar.gz" ] && tar xzf "$out/results.tar.gz" -C "$work"
export PYTHONUNBUFFERED=1 NO_COLOR=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
status=0

run_tests() {
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    deno task jackpot info
    timeout "$limit" deno test --allow-all tests/gpu_layer_test.ts tests/gpu_profile_test.ts tests/obrs_gpu_kernels_test.ts \
      tests/obrs_gpu_jackpot_test.ts tests/obrs_gpu_errors_test.ts tests/obrs_gpu_blocks_test.ts tests/matmul_correctness_test.ts \
      tests/autograd_ops_test.ts tests/autograd_elementwise_test.ts tests/autograd_block_test.ts \
      tests/autograd_rowops_reduce_test.ts tests/autograd_rowops_norm_test.ts \
      tests/autograd_rowops_softmax_test.ts tests/autograd_swiglu_test.ts tests/autograd_grad_sink_test.ts \
      tests/matmul_skinny_test.ts tests/obrs_gpu_lse_test.ts tests/obrs_gpu_split_test.ts \
      tests/autograd_add_rms_test.ts tests/autograd_pending_grad_test.ts tests/autograd_norm_rope_test.ts \
      tests/autograd_attention_fused_test.ts tests/nn_joined_split_test.ts tests/nn_joined_swiglu_test.ts \
      tests/training_mlp_test.ts
  } 2>&1 | tee "$out/tests.log" || status=1
}

run_torch() {
  {
    timeout "$limit" python3 bench/torch/obrs_pipeline.py --out "$work/torch/obrs.json"
    timeout "$limit" python3 bench/torch/matmul.py --out "$work/torch/matmul.json"
    timeout "$limit" python3 bench/torch/train_step.py --out "$work/torch/train_step.json"
    timeout "$limit" python3 bench/torch/generate.py --out "$work/torch/generate.json"
  } 2>&1 | tee "$out/torch.log" || status=1
}

run_ours() {
  timeout "$((limit * 2))" deno task bench --out "$work/bench" --torch "$work/torch" 2>&1 | tee "$out/ours.log" || status=1
}

run_profile() {
  timeout "$limit" deno run -A bench/nn/profile.ts --top 25 --json "$work/bench/profile.json" 2>&1 |
    tee "$out/profile.log" || status=1
}

run_sweep() {
  {
    nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv || true
    timeout 150 deno test --allow-all tests/autograd_rowops_reduce_test.ts tests/autograd_rowops_norm_test.ts \
      tests/autograd_rowops_softmax_test.ts tests/autograd_swiglu_test.ts tests/autograd_grad_sink_test.ts \
      tests/matmul_skinny_test.ts tests/obrs_gpu_lse_test.ts tests/obrs_gpu_split_test.ts 2>&1 | tail -4
    timeout 60 deno run -A bench/tensor/main.ts --json "$work/bench/tensor.json"
    timeout 40 python3 bench/torch/matmul.py --decode --out "$work/torch/matmul_decode.json"
    timeout 60 deno run -A bench/matmul/main.ts --decode --warm-ms=1000 \
      --torch="$work/torch/matmul_decode.json" --json="$work/bench/matmul_decode.json" | tail -45
  } 2>&1 | tee "$out/sweep.log" || status=1
  bash bench/obrs/sweep.sh "$work/obrs" >/dev/null 2>&1 || status=1
  cp "$work/obrs/sweep.log" "$out/obrs_sweep.log" 2>/dev/null || true
  limit=150 run_profile
}

run_fusion() {
  {
    nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv || true
    timeout 180 deno test --allow-all tests/autograd_add_rms_test.ts tests/autograd_pending_grad_test.ts \
      tests/autograd_norm_rope_test.ts tests/autograd_attention_fused_test.ts tests/nn_joined_split_test.ts \
      tests/nn_joined_swiglu_test.ts tests/nn_joined_transformer_test.ts tests/autograd_grad_sums_test.ts \
      tests/autograd_qkv_heads_test.ts tests/autograd_attention_flash_test.ts tests/nn_decode_joined_test.ts \
      tests/matmul_skinny_swiglu_test.ts tests/nn_rollout_test.ts 2>&1 | grep -E "FAILED|passed|failed"
    deno run -A bench/nn/dispatches.ts --as-gpu
    timeout 45 deno run -A bench/matmul/swiglu_down.ts --json="$work/bench/swiglu_down.json"
    timeout 60 deno run -A bench/attention/main.ts --json "$work/bench/attention.json"
    for impl in composed auto; do
      timeout 90 deno run -A bench/nn/main.ts --attention "$impl" --json "$work/bench/transformer_$impl.json"
    done
  } 2>&1 | tee "$out/fusion.log" || status=1
}

# Deferred gradient sums' split-K bound (src/autograd/grad_sums.ts): none and all split-K partials
# deferred, against the default (4 MiB) that the fusion stage's `auto` run measured.
run_defer() {
  {
    # The fifth no-GPU session's decode fusion (add + RMSNorm inside the skinny matmul): its tests
    # on the real adapter, then its A/B (rule in BENCHMARKS.md, "Fifth session").
    timeout 90 deno test --allow-all tests/matmul_skinny_add_rms_test.ts tests/nn_decode_add_rms_test.ts 2>&1 |
      grep -E "FAILED|passed|failed"
    timeout 60 deno run -A bench/matmul/add_rms_qkv.ts --json="$work/bench/add_rms_qkv.json"
    for mb in 0 64; do
      timeout 90 deno run -A bench/nn/main.ts --defer-split-mb "$mb" --json "$work/bench/transformer_defer$mb.json"
    done
  } 2>&1 | tee "$out/defer.log" || status=1
}

# Checkpoints both ways between jackpot (on the GPU) and transformers (CPU, fp32, eager).
# The RL losses (src/rl) on the real adapter and at Qwen's vocabulary, and the streamed loader's
# host memory on a real GPU (a 0.6B stand-in folder; on llvmpipe the model's buffers are host
# memory too, here they are not).
run_rl() {
  {
    timeout 120 deno test --allow-all tests/rl_policy_loss_test.ts tests/rl_distill_test.ts \
      tests/rl_mismatch_test.ts tests/rl_jackpot_tensors_test.ts tests/rl_joint_step_test.ts \
      tests/nn_load_test.ts tests/text_chat_template_test.ts tests/rl_trainer_test.ts \
      tests/rl_controllers_test.ts tests/cli_rl_test.ts 2>&1 | tail -4
    # the trainer's seconds per iteration at a paper-like batch (fresh presets: rewards are 0,
    # the work is the same): 64 prompts x 8 samples, 8 mini-batches of 64 rows
    rm -rf "$work/rl-run"
    timeout 150 deno task jackpot rl --policy policy --actor actor --iterations 6 --prompts 64 \
      --group-size 8 --minibatch 64 --eval-size 64 --eval-every 6 --quiet --out "$work/rl-run" &&
      cut -d, -f1,8,20,21 "$work/rl-run/iterations.csv"
    timeout 60 deno run -A bench/rl/policy_loss.ts --B 64 --T 1024 --no-yardstick
    timeout 90 deno run -A bench/rl/distill.ts --N 4096 --V 151936 --repeats 5 --inner 2
    timeout 60 deno run -A bench/rl/joint_step.ts --steps 20 --by-kernel
    rm -rf "$work/qwen-like"
    timeout 90 deno run -A bench/bigvocab/hub_folder.ts --out "$work/qwen-like" &&
      timeout 90 deno run -A bench/bigvocab/load.ts --checkpoint "$work/qwen-like" &&
      timeout 120 deno run -A bench/bigvocab/load.ts --checkpoint "$work/qwen-like" --eager
    rm -rf "$work/qwen-like"
  } 2>&1 | tee "$out/rl.log" || status=1
}

# jackpot sweep on the GPU: its tests on the real adapter, then the fig4 preset (12 runs, 3 seeds)
# at its CPU size and at 100 iterations, timed, with the report's tables kept.
run_rl_sweep() {
  {
    timeout 120 deno test --allow-all tests/sweep_plan_test.ts tests/cli_sweep_test.ts \
      tests/cli_sweep_workers_test.ts tests/cli_rl_eval_test.ts 2>&1 | tail -4
    for n in 30 100; do
      rm -rf "$work/fig4-$n"
      start=$SECONDS
      timeout 280 deno task jackpot sweep --preset fig4 --set "iterations=$n,eval-every=10" \
        --out "$work/fig4-$n" --quiet &&
        echo "fig4 at $n iterations: $((SECONDS - start)) s" &&
        cat "$work/fig4-$n/summary/final.csv" "$work/fig4-$n/summary/comparisons.csv"
      rm -rf "$work/fig4-$n"/runs/*/checkpoints
    done
  } 2>&1 | tee "$out/rl-sweep.log" || status=1
}

# GPU memory of jackpot rl on a Qwen3-1.7B + 0.6B pair at thousands of rows per mini-batch, where
# the per-row slopes rise above the buffer pool's rounding (BENCHMARKS.md, "Eleventh session").
run_memory() {
  {
    rm -rf "$work/rlmem"
    timeout 540 deno run -A bench/memory/rl_memory.ts --work "$work/rlmem" --minibatch 8 \
      --short 256 --long 512 --json "$work/rl_memory.json"
    rm -rf "$work/rlmem"
  } 2>&1 | tee "$out/memory.log" || status=1
}

# jackpot rl on Hub-style folders at Qwen3-0.6B's shapes (V = 151,936): what an iteration of the
# paper's setting costs on this GPU, before real checkpoints are tried.
run_rl_text() {
  {
    timeout 120 deno test --allow-all tests/text_task_test.ts tests/cli_rl_text_test.ts \
      tests/text_answer_test.ts tests/text_problems_test.ts 2>&1 | tail -4
    rm -rf "$work/qwen-policy" "$work/qwen-actor" "$work/rl-text"
    timeout 90 deno run -A bench/bigvocab/hub_folder.ts --out "$work/qwen-policy" --seed 1 &&
      timeout 60 deno run -A bench/bigvocab/hub_folder.ts --out "$work/qwen-actor" --layers 4 --seed 2 &&
      start=$SECONDS &&
      timeout 300 deno task jackpot rl --task text:problems=1024,maxNew=64 \
        --policy "$work/qwen-policy" --actor "$work/qwen-actor" --prompts 8 --group-size 8 \
        --minibatch 16 --iterations 4 --eval-every 4 --eval-size 16 --lr-policy 1e-6 \
        --lr-actor 1e-6 --out "$work/rl-text" --quiet &&
      echo "rl-text: 4 iterations in $((SECONDS - start)) s" &&
      cat "$work/rl-text/iterations.csv"
    rm -rf "$work/qwen-policy" "$work/qwen-actor" "$work/rl-text/checkpoints" \
      "$work/rl-text/policy" "$work/rl-text/actor"
  } 2>&1 | tee "$out/rl-text.log" || status=1
}

run_interop() {
  {
    rm -rf "$work/interop"
    timeout 90 deno run -A bench/interop/hf.ts --export "$work/interop" &&
      timeout 150 python3 bench/torch/hf_interop.py --dir "$work/interop" --out "$work/bench/interop_python.json" &&
      timeout 90 deno run -A bench/interop/hf.ts --check "$work/interop" --json "$work/bench/interop_deno.json"
  } 2>&1 | tee "$out/interop.log" || status=1
  # src/text against Hugging Face tokenizers: four trained layouts, every id and decoding.
  {
    rm -rf "$work/tokcheck"
    timeout 120 python3 bench/torch/tokenizer_check.py --dir "$work/tokcheck" &&
      timeout 90 deno run -A bench/text/check.ts --dir "$work/tokcheck"
  } 2>&1 | tee "$out/tokenizer_check.log" || status=1
}

case "$stage" in
  tests) run_tests ;;
  torch) run_torch ;;
  ours) run_ours ;;
  profile) run_profile ;;
  sweep) run_sweep ;;
  fusion) run_fusion ;;
  defer) run_defer; run_interop ;;
  interop) run_interop ;;
  rl) run_rl ;;
  rl-sweep) run_rl_sweep ;;
  rl-text) run_rl_text ;;
  memory) run_memory ;;
  all) run_tests; run_torch; run_ours ;;
  *) echo "run.sh: unknown stage '$stage' (tests, torch, ours, profile, sweep, fusion, defer, interop, rl, rl-sweep, rl-text, memory, all)" >&2; exit 2 ;;
esac
tar czf "$out/results.tar.gz" -C "$work" .
exit "$status"
