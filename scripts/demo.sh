#!/usr/bin/env bash
# The demo: generate 200,000 points in 64 dimensions around 100 centres, cluster them into
# 100 clusters with the flashkm CLI (progress on stderr), then predict the labels again and
# show the result files.
set -euo pipefail
build=${1:-build}
out=demo-data
mkdir -p "$out"
bin="$build/tools/flashkm"
"$bin" info
"$build/tools/make_blobs" "$out/blobs.npy" 200000 64 100 7
"$bin" fit -k 100 --max-iter 50 --seed 1 --centroids "$out/centroids.npy" --labels "$out/labels.npy" "$out/blobs.npy"
"$bin" predict --centroids "$out/centroids.npy" --labels "$out/predicted.npy" "$out/blobs.npy"
if cmp -s "$out/labels.npy" "$out/predicted.npy"; then
  echo "demo: predict reproduces fit's labels"
else
  echo "demo: predict labels differ from fit's" >&2
  exit 1
fi
ls -l "$out"
