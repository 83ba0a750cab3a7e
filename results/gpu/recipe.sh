#!/usr/bin/env bash
# One candidate recipe on several classic-control scripts and seeds at once, side by side on one
# GPU (--cuda-graph), each stopped by SIGINT after LIMIT seconds or at its own budget. Each run's
# result.json, config.json, metrics.csv and log land in one archive, $OUT/runs-<NAME>.tgz (one
# file to bring back); unpacked, `tar xzf runs-<NAME>.tgz` gives runs/<env>/<NAME>-seed<k>/, the
# layout `python -m dreamer.results --runs runs --name <NAME> --partial` summarises.
# From the repository root:
#   OUT=somewhere NAME=shared [SCRIPTS="02 03 05"] [SEEDS="0 1 2 3 4"] [LIMIT=400] \
#     [SET="actor_critic.horizon=30 ..."] [DEVICE=cpu] bash results/gpu/recipe.sh
# A GPU image without gymnasium: bring its wheels (gymnasium, farama-notifications) in .whl/;
# they are installed into /tmp/site first.
set -u
if [ -d .whl ] && ! python3 -c "import gymnasium" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
OUT=${OUT:-results/gpu/out}
NAME=${NAME:?name the candidate: NAME=...}
SCRIPTS=${SCRIPTS:-02 03 05}
SEEDS=${SEEDS:-0 1 2 3 4}
LIMIT=${LIMIT:-400}
SET=${SET:-}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu tries the script itself without a GPU
GRAPH=$([ "$DEVICE" = cuda ] && echo --cuda-graph)
KEEP=/tmp/keep-$NAME  # this candidate's files only, whatever earlier calls left in /tmp
mkdir -p "$OUT"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name --format=csv,noheader
env_of() {  # a numbered script's env id, read from its main(env_id="...") line
  sed -n 's/.*env_id="\([^"]*\)".*/\1/p' "$(ls "$1"_*.py)"
}
run() {  # script seed
  local env dir
  env=$(env_of "$1")
  dir="/tmp/runs/$env/$NAME-seed$2"
  mkdir -p "/tmp/runs/$env" "$KEEP/runs/$env/$NAME-seed$2"
  timeout -s INT "$LIMIT" python3 "$(ls "$1"_*.py)" --seed "$2" --device "$DEVICE" $GRAPH \
    --threads 1 --no-progress --logdir "$dir" ${SET:+--set $SET} > "$dir.log" 2>&1
  cp "$dir"/*.json "$dir/metrics.csv" "$dir.log" "$KEEP/runs/$env/$NAME-seed$2/" 2>/dev/null
  echo "$env seed $2: $(tail -1 "$dir.log")"
}
for script in $SCRIPTS; do
  for seed in $SEEDS; do run "$script" "$seed" & done
done
wait
tar czf "$OUT/runs-$NAME.tgz" -C "$KEEP" runs
