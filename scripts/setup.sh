#!/bin/sh
# Installs the Debian packages crlab needs to build, test and run, if any
# are missing (run as root on Debian 12 or later). The CUDA toolkit is not
# installed here: when /usr/local/cuda (or nvcc on PATH) is present the
# build uses it, otherwise the CPU build is made. munge, slurmctld, slurmd
# and slurm-client are for tests/lua/test_slurm.lua, which starts a private
# single-node Slurm of its own (tests/slurm/start.sh); on a machine run by
# systemd, Debian's munge package also starts the system munged.
set -e
PKGS="build-essential perl gzip luajit libluajit-5.1-dev libopenblas-dev libdnnl-dev libreadline8 libpng-dev libturbojpeg0-dev libmatio-dev \
zlib1g-dev gnuplot-nox dataset-fashion-mnist munge slurmctld slurmd slurm-client"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
else
  echo "setup: all packages present"
fi
