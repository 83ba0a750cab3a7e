#!/usr/bin/env bash
# Five CartPole runs side by side on one GPU for 180 s each (--cuda-graph): the edge
# candidate (raw decoder target + hidden bias + con_terminal_weight 10, docs/experiments.md) on
# seeds 0, 1 and 4, and the script's recipe unchanged on seeds 0 and 1 as the same-device
# baseline. From the repository root: OUT=somewhere bash results/gpu/cartpole-edge.sh
set -u
OUT=${OUT:-results/gpu/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
EDGE="--set hidden_bias=true world_model.dec_symlog=false world_model.con_terminal_weight=10"
run() {  # name seed extra...
  local name=$1 seed=$2; shift 2
  timeout -s INT 180 python3 02_dreamer_cartpole.py --seed "$seed" --device cuda --cuda-graph \
    --threads 1 --no-progress --logdir "/tmp/$name" "$@" > "/tmp/$name.log" 2>&1
  cp "/tmp/$name/metrics.csv" "$OUT/$name.csv"
  tail -1 "/tmp/$name.log"
}
for s in 0 1 4; do run "edge-seed$s" $s $EDGE & done
for s in 0 1; do run "preset-seed$s" $s & done
wait
