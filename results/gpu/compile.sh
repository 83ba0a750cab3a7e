#!/usr/bin/env bash
# The third GPU run behind docs/scale.md: kernel counts per graphed xs update with the RSSM's
# loop bodies compiled (`--compile steps`), xs in bf16 compiled, then CartPole seeds 1 and 2
# with --cuda-graph --compile steps side by side on the one GPU, stopped after 100 s.
# From the repository root: OUT=somewhere bash results/gpu/compile.sh
set -u
OUT=${OUT:-results/gpu/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
for a in "--preset xs --cuda-graph" "--preset xs --cuda-graph --compile steps" \
         "--preset xs --cuda-graph --compile steps --precision bf16"; do
  timeout 90 python3 -m dreamer.bench --device cuda --updates 20 --profile $a 2>/dev/null \
    >> "$OUT/bench3.jsonl"
done
for s in 1 2; do
  timeout 100 python3 02_dreamer_cartpole.py --seed $s --device cuda --cuda-graph --compile steps \
    --threads 1 --no-progress --steps 10000 --logdir /tmp/cp$s > "$OUT/cp$s.log" 2>&1 &
done
wait
cp /tmp/cp1/metrics.csv "$OUT/cp1.csv"
cp /tmp/cp2/metrics.csv "$OUT/cp2.csv"
