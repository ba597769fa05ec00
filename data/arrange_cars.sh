#!/bin/sh
# Checks the Stanford Cars archives and unpacks them into DEST/stanford_cars
# (cars_train/, cars_test/, devkit/, cars_test_annos_withlabels.mat).
# usage: sh data/arrange_cars.sh car_devkit.tgz cars_train.tgz cars_test.tgz cars_test_annos_withlabels.mat DEST
set -e
[ $# -eq 5 ] || { echo "usage: $0 car_devkit.tgz cars_train.tgz cars_test.tgz cars_test_annos_withlabels.mat DEST" >&2; exit 2; }
check() {
  got=$(md5sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "$0: $1 has MD5 $got, expected $2" >&2; exit 1; }
  echo "ok: $1"
}
check "$1" c3b158d763b6e2245038c8ad08e45376
check "$2" 065e5b463ae28d29e77c1b4b166cfe61
check "$3" 4ce7ebf6a94d07f1952d94dd34c4d501
check "$4" b0a2b23655a3edd16d84508592a98d10
dest=$5/stanford_cars
mkdir -p "$dest"
for a in "$1" "$2" "$3"; do tar -xzf "$a" -C "$dest"; done
cp "$4" "$dest/cars_test_annos_withlabels.mat"
echo "ready: crlab scripts/train.lua --dataset cars --data $dest [--bbox]"
