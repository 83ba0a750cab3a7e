#!/usr/bin/env bash
# The second GPU run behind docs/scale.md: kernel counts per update (eager, CUDA graph, plain
# maths), then two more CartPole seeds with --cuda-graph, run side by side on the one GPU and
# stopped after 120 s. From the repository root: OUT=somewhere bash results/gpu/profile.sh
set -u
OUT=${OUT:-results/gpu/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 python3 -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tail -2
for a in "--preset xs" "--preset xs --cuda-graph" "--preset xs --cuda-graph --plain-maths" \
         "--preset 12m --cuda-graph --plain-maths"; do
  timeout 60 python3 -m dreamer.bench --device cuda --updates 20 --profile $a 2>/dev/null \
    >> "$OUT/bench2.jsonl"
done
for s in 1 2; do
  timeout 120 python3 02_dreamer_cartpole.py --seed $s --device cuda --cuda-graph --threads 1 \
    --no-progress --steps 10000 --logdir /tmp/cp$s > "$OUT/cp$s.log" 2>&1 &
done
wait
cp /tmp/cp1/metrics.csv "$OUT/cp1.csv"
cp /tmp/cp2/metrics.csv "$OUT/cp2.csv"
