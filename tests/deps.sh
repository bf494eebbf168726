#!/bin/bash
# deps.sh: install the Debian packages Sheepfold builds and tests with (as root), or print the
# one apt-get line to run. Exit 0 when nothing is missing afterwards.
BUILD_PKGS="build-essential pkg-config libcpg-dev libcfg-dev libquorum-dev libcorosync-common-dev
liburcu-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev libssl-dev libcunit1-dev libjson-c-dev"
TEST_PKGS="corosync qemu-utils libnbd-bin nbdkit fio iproute2 util-linux procps python3 hyperfine
clang time"
[ "${1:-}" = --build-only ] && TEST_PKGS=

missing=()
for p in $BUILD_PKGS $TEST_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all packages are installed"; exit 0; }

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages; run as root:"
	echo "  apt-get update && apt-get install -y ${missing[*]}"
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/tmp/sheepfold-deps.log 2>&1; then
	apt-get update -q >>/tmp/sheepfold-deps.log 2>&1
	apt-get install -y -q "${missing[@]}" >>/tmp/sheepfold-deps.log 2>&1 ||
		{ echo "deps: apt-get install failed; see /tmp/sheepfold-deps.log"; exit 1; }
fi
echo "deps: done"
