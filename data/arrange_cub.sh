#!/bin/sh
# Checks CUB_200_2011.tgz and unpacks it into DEST.
# usage: sh data/arrange_cub.sh CUB_200_2011.tgz DEST
set -e
[ $# -eq 2 ] || { echo "usage: $0 CUB_200_2011.tgz DEST" >&2; exit 2; }
want=97eceeb196236b17998738112f37df78
got=$(md5sum "$1" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "$0: $1 has MD5 $got, expected $want" >&2; exit 1; }
mkdir -p "$2"
tar -xzf "$1" -C "$2"
echo "ready: crlab scripts/train.lua --dataset cub200 --data $2/CUB_200_2011 [--bbox]"
