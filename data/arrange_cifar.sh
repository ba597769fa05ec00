#!/bin/sh
# Checks a CIFAR-10 or CIFAR-100 binary archive and unpacks it into DEST.
# usage: sh data/arrange_cifar.sh cifar-10-binary.tar.gz|cifar-100-binary.tar.gz DEST
set -e
[ $# -eq 2 ] || { echo "usage: $0 ARCHIVE DEST" >&2; exit 2; }
case "$(basename "$1")" in
  cifar-10-binary.tar.gz) want=c32a1d4ab5d03f1284b67883e8d87530; out=cifar-10-batches-bin ;;
  cifar-100-binary.tar.gz) want=03b5dce01913d631647c71ecec9e9cb8; out=cifar-100-binary ;;
  *) echo "$0: expected cifar-10-binary.tar.gz or cifar-100-binary.tar.gz, got $1" >&2; exit 2 ;;
esac
got=$(md5sum "$1" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "$0: $1 has MD5 $got, expected $want (incomplete download?)" >&2; exit 1; }
mkdir -p "$2"
tar -xzf "$1" -C "$2"
echo "ready: $2/$out  (crlab scripts/train.lua --dataset $( [ $out = cifar-10-batches-bin ] && echo cifar10 || echo cifar100) --data $2/$out)"
