#!/usr/bin/env bash
# The OBRS row-pass sweep for one H100 device call (~175 s of device time): the fused-pass and
# Jackpot variants, the top-k versions and the log-sum-exp versions at 4,096 × 151,936 for k = 20,
# then the decisive few at k = 1 and k = 64. Every case is checked against the float64 reference
# before it is timed (bench/obrs/check.ts); a WRONG line means that variant must not be promoted.
# Results print as they come ("[obrs k=20] ..."), so a stage cut by its time limit keeps what it
# timed. The decision rule is in bench/obrs/README.md.
#
# Usage, from the repository root on the GPU host (after `source .device/enter.sh`):
#   bash bench/obrs/sweep.sh [OUT_DIR]        # default $OUT, else device-out/
# Writes OUT_DIR/sweep.log and OUT_DIR/obrs_sweep.tar.gz (one JSON per stage). ROWS and VOCAB
# override the shape (ROWS=64 VOCAB=4096 runs it on the CPU fallback adapter in a minute or two).
set -uo pipefail
out=${1:-${OUT:-device-out}}
rows=${ROWS:-4096}
vocab=${VOCAB:-151936}
mkdir -p "$out"
json=$(mktemp -d)
log="$out/sweep.log"
export NO_COLOR=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
status=0

# stage NAME K ONLY LIMIT_S: one bench process (fills both matrices, measures the copy rate).
stage() {
  local name=$1 k=$2 only=$3 limit=$4
  echo "== $name: $rows × $vocab, k = $k, --only '$only' (limit ${limit}s)" | tee -a "$log"
  timeout "$limit" deno run -A bench/obrs/main.ts --rows "$rows" --vocab "$vocab" --k "$k" \
    --repeats 10 --only "$only" --out "$json/obrs_$name.json" >>"$log" 2>&1 || {
    echo "== $name: exit status $? (124: stopped at the time limit)" | tee -a "$log"
    status=1
  }
}

: >"$log"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >>"$log" 2>&1
# At k = 1 and 64: every fused variant a jackpot-* winner can promote (s2 and s8 are judged by
# s4, bench/obrs/README.md rule 4) and its top-k counterpart; 13 cases, ~2.7 s each.
few='v9,v10,v10-g8,v10-uc,v10-g8-uc,v11-s4,v11-s4-g8'
few+=',fused,fused-g8,fused-uc,fused-g8-uc,fused-s4,fused-s4-g8'
stage k20-fused 20 'fused*,jackpot*' 60
stage k20-topk 20 'v9,v10*,v11*,lse*' 45
stage k1 1 "$few" 35
stage k64 64 "$few" 35
tar czf "$out/obrs_sweep.tar.gz" -C "$json" .
grep -E '^\[obrs|WRONG|^==' "$log"
exit "$status"
