#!/bin/sh
# Checks the ILSVRC-2012 archives and lays them out as train/<wnid>/ and
# val/<wnid>/ under DEST. VAL_LABELS has one "<file> <wnid>" per line.
# usage: sh data/arrange_imagenet.sh ILSVRC2012_img_train.tar ILSVRC2012_img_val.tar VAL_LABELS DEST
set -e
[ $# -eq 4 ] || { echo "usage: $0 TRAIN_TAR VAL_TAR VAL_LABELS DEST" >&2; exit 2; }
check() {
  got=$(md5sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "$0: $1 has MD5 $got, expected $2" >&2; exit 1; }
}
check "$1" 1d675b47d978889d74fa0da5fadfb00e
check "$2" 29b22e2961454d5413ddabcf34fc5622
mkdir -p "$4/train" "$4/val"
tar -xf "$1" -C "$4/train"
for t in "$4"/train/*.tar; do
  d="${t%.tar}"
  mkdir -p "$d"
  tar -xf "$t" -C "$d"
  rm "$t"
done
tar -xf "$2" -C "$4/val"
while read -r file wnid; do
  [ -n "$file" ] || continue
  mkdir -p "$4/val/$wnid"
  mv "$4/val/$file" "$4/val/$wnid/"
done < "$3"
left=$(find "$4/val" -maxdepth 1 -type f | wc -l)
[ "$left" -eq 0 ] || { echo "$0: $left validation images were not in $3" >&2; exit 1; }
echo "ready: crlab scripts/train.lua --dataset imagenet --data $4 --model resnet50"
