#!/bin/sh
# Checks the SVHN format-2 files in DIR (train_32x32.mat, test_32x32.mat and,
# if present, extra_32x32.mat). usage: sh data/arrange_svhn.sh DIR
set -e
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
check() {
  [ -f "$1/$2" ] || { [ "$4" = optional ] && return 0; echo "$0: missing $1/$2" >&2; exit 1; }
  got=$(md5sum "$1/$2" | cut -d' ' -f1)
  [ "$got" = "$3" ] || { echo "$0: $1/$2 has MD5 $got, expected $3" >&2; exit 1; }
  echo "ok: $1/$2"
}
check "$1" train_32x32.mat e26dedcc434d2e4c54c9b2d4a06d8373
check "$1" test_32x32.mat eb5a983be6a315427106f1b164d9cef3
check "$1" extra_32x32.mat a93ce644f1a588dc4d68dda5feec44a7 optional
echo "ready: crlab scripts/train.lua --dataset svhn --data $1"
