#!/bin/sh
# Unpacks the Adience aligned faces next to the five fold files.
# usage: sh data/arrange_adience.sh SRC DEST
#   SRC holds aligned.tar.gz and fold_0_data.txt ... fold_4_data.txt
# (the benchmark publishes no checksums; the reader checks every listed face exists)
set -e
[ $# -eq 2 ] || { echo "usage: $0 SRC DEST" >&2; exit 2; }
mkdir -p "$2"
for k in 0 1 2 3 4; do
  [ -f "$1/fold_${k}_data.txt" ] || { echo "$0: missing $1/fold_${k}_data.txt" >&2; exit 1; }
  cp "$1/fold_${k}_data.txt" "$2/"
done
[ -f "$1/aligned.tar.gz" ] || { echo "$0: missing $1/aligned.tar.gz" >&2; exit 1; }
tar -xzf "$1/aligned.tar.gz" -C "$2"
[ -d "$2/aligned" ] || { echo "$0: the archive did not create $2/aligned" >&2; exit 1; }
echo "ready: crlab scripts/train.lua --dataset adience --data $2 --fold 0"
