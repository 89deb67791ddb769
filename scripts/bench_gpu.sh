#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md: `fer-jax bench` for every model family, bf16 then f32, one JSON
# report per run in OUTDIR. Usage: scripts/bench_gpu.sh OUTDIR [SECONDS]; runs that would start
# after SECONDS (default: no limit) are listed as not run rather than cut off midway.
set -u
out=${1:?usage: scripts/bench_gpu.sh OUTDIR [SECONDS]}
budget=${2:-0}
workers=${WORKERS:-8}  # grain worker processes reading and batching records
mkdir -p "$out"
start=$SECONDS

bench() {
    local name=$1; shift
    if (( budget > 0 && SECONDS - start > budget )); then echo "== $name: not run (time budget spent)"; return; fi
    echo "== $name: fer-jax bench $* --workers $workers"
    local tic=$SECONDS
    python -m fer_jax.cli bench "$@" --workers "$workers" --json "$out/$name.json" > "$out/$name.log" 2>&1
    local rc=$?
    tail -n 13 "$out/$name.log"
    echo "== $name: exit $rc after $((SECONDS - tic)) s"
}

video16="--frames 16 --size 112 --channels 3"
bench cnn3d_convlstm_b256_bf16 --model cnn3d_convlstm --batch 256 --steps 20 --precision bf16
bench cnn3d_convlstm_b256_f32 --model cnn3d_convlstm --batch 256 --steps 20 --precision f32
bench c3d_b32_bf16 --model msff_c3d --batch 32 --steps 10 $video16 --precision bf16
bench cnn_blstm_r18_b32_bf16 --model msff_cnn_blstm --batch 32 --steps 10 $video16 --model-kwargs '{"backbone": "resnet18"}' --precision bf16
bench av_fbp_b32_bf16 --model av_attention_fbp --batch 32 --steps 10 --frames 8 --size 112 --channels 3 --audio-frames 300 --precision bf16
bench c3d_b32_f32 --model msff_c3d --batch 32 --steps 10 $video16 --precision f32
bench cnn_blstm_r18_b32_f32 --model msff_cnn_blstm --batch 32 --steps 10 $video16 --model-kwargs '{"backbone": "resnet18"}' --precision f32
bench av_fbp_b32_f32 --model av_attention_fbp --batch 32 --steps 10 --frames 8 --size 112 --channels 3 --audio-frames 300 --precision f32
