#!/usr/bin/env bash
# 07_dreamer_pixels.py on one GPU: first collection alone at 1 and 4 envs (env steps/s, the
# policy acting on the GPU, `dreamer.bench --collect`), then the run: CartPole from 64x64 frames
# with the update replayed as a CUDA graph, the RSSM's steps compiled and four envs collecting;
# stopped by SIGINT after LIMIT seconds (its checkpoint saved). On a machine still warm,
# RESUME=1 skips the collection timing and continues the same run.
# From the repository root:
#   OUT=somewhere [LIMIT=500] [RESUME=1] [COLLECT_ENVS="1 4"] bash results/gpu/pixels.sh
set -u
OUT=${OUT:-results/gpu/out}
LIMIT=${LIMIT:-500}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader
if [ -z "${RESUME:-}" ]; then
  for n in ${COLLECT_ENVS:-1 4 1 4}; do
    timeout 60 python3 -m dreamer.bench --collect --preset pixels --envs "$n" --device cuda \
      --threads 1 2>/dev/null | tee -a "$OUT/collect.jsonl"
  done
fi
timeout -s INT "$LIMIT" python3 07_dreamer_pixels.py --device cuda --cuda-graph --compile steps \
  --envs 4 --threads 1 --no-progress --logdir /tmp/pixels ${RESUME:+--resume} \
  >> /tmp/pixels.log 2>&1
cp /tmp/pixels/metrics.csv "$OUT/pixels-metrics.csv"
cp /tmp/pixels.log "$OUT/pixels.log"
tail -3 /tmp/pixels.log
