#!/usr/bin/env bash
# `--compile steps` against eager on the CPU, cartpole preset, one thread, three alternating
# runs each; one JSON line per run. From the repository root:
# bash results/compile-steps-cpu.sh > results/compile-steps-cpu-cartpole.jsonl
set -eu
for i in 1 2 3; do
  python -m dreamer.bench --preset cartpole --threads 1 --updates 8 --warmup 2 2>/dev/null
  python -m dreamer.bench --preset cartpole --threads 1 --updates 8 --warmup 2 --compile steps \
    2>/dev/null
done
