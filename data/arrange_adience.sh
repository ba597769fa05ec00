#!/bin/sh
# Unpacks the Adience faces (aligned.tar.gz, else faces.tar.gz) next to the five fold files.
# usage: sh data/arrange_adience.sh SRC DEST
#   SRC holds aligned.tar.gz (or faces.tar.gz) and fold_0_data.txt ... fold_4_data.txt
# (the benchmark publishes no checksums; the reader checks every listed face exists)
set -e
[ $# -eq 2 ] || { echo "usage: $0 SRC DEST" >&2; exit 2; }
mkdir -p "$2"
for k in 0 1 2 3 4; do
  [ -f "$1/fold_${k}_data.txt" ] || { echo "$0: missing $1/fold_${k}_data.txt" >&2; exit 1; }
  cp "$1/fold_${k}_data.txt" "$2/"
done
if [ -f "$1/aligned.tar.gz" ]; then archive=aligned; elif [ -f "$1/faces.tar.gz" ]; then archive=faces
else echo "$0: missing $1/aligned.tar.gz (or $1/faces.tar.gz)" >&2; exit 1; fi
tar -xzf "$1/$archive.tar.gz" -C "$2"
[ -d "$2/$archive" ] || { echo "$0: the archive did not create $2/$archive" >&2; exit 1; }
echo "ready: crlab scripts/train.lua --dataset adience --data $2 --fold 0"
