#!/bin/bash
# deps.sh: install the Debian packages Sheepfold builds and tests with (as root), or print the
# one apt-get line to run. Exit 0 when nothing is missing afterwards.
BUILD_PKGS="build-essential pkg-config libcpg-dev libcfg-dev libquorum-dev libcorosync-common-dev
liburcu-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev libssl-dev libnbd-dev libcunit1-dev libjson-c-dev libisal-dev libzookeeper-mt-dev"
TEST_PKGS="corosync qemu-utils libnbd-bin nbdkit fio iproute2 util-linux procps python3 hyperfine
clang time qemu-system-x86 busybox-static e2fsprogs cpio file kmod git
zookeeper default-jre-headless"
[ "${1:-}" = --build-only ] && TEST_PKGS=

missing=()
for p in $BUILD_PKGS $TEST_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# guest_kernel: the guest-boot scenario boots Debian's cloud kernel. It is unpacked into
# build/guest-kernel, never installed (installing a kernel package would touch the boot loader).
guest_kernel() {
	local top dest pkg tmp
	top=$(cd "$(dirname "$0")/.." && pwd)
	dest=$top/build/guest-kernel
	ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1 && return 0
	command -v apt-get >/dev/null || return 0
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)
	[ -n "$pkg" ] || { echo "deps: no linux-image-cloud-amd64 in the package lists (apt-get update?); the guest-boot test will skip"; return 0; }
	tmp=$(mktemp -d)
	if (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) && mkdir -p "$dest" &&
	   dpkg-deb -x "$tmp"/*.deb "$dest" && PATH=$PATH:/usr/sbin:/sbin depmod -b "$dest" "${pkg#linux-image-}"; then
		echo "deps: unpacked $pkg into $dest for the guest-boot test"
	else
		echo "deps: could not fetch $pkg; the guest-boot test will skip"
	fi
	rm -rf "$tmp"
}
# want_guest_kernel: the guest kernel is fetched after the packages, since unpacking it needs
# kmod's depmod (--packages: the packages only; the demo needs no guest kernel)
want_guest_kernel() {
	[ -n "$TEST_PKGS" ] && [ "${1:-}" != --packages ] && [ "$(uname -m)" = x86_64 ]
}

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all packages are installed"
	want_guest_kernel "${1:-}" && guest_kernel
	exit 0
fi

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
want_guest_kernel "${1:-}" && guest_kernel
exit 0
