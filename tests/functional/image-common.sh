# image-common.sh: helpers for the disk image scenarios (sourced after common.sh).
command -v qemu-img >/dev/null || skip "qemu-img (qemu-utils) is not installed"

# is format FMT's driver linked into collie? (create support is checked separately)
have_fmt() {
	local out
	out=$($COLLIE image create -f "$1" "$T/.probe-$1" 1M 2>&1)
	rm -f "$T/.probe-$1"*
	case "$out" in *"Unknown file format"*) return 1 ;; esac
	return 0
}

# write_pattern FILE: qemu-io writes known patterns at scattered offsets (unaligned ones, the
# last byte) into an image of any format qemu knows
write_pattern() {
	local img=$1 fmt=${2:-} size
	size=$(qemu-img info --output=json ${fmt:+-f "$fmt"} "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
	qemu-io ${fmt:+-f "$fmt"} \
		-c "write -P 0x11 0 64k" \
		-c "write -P 0x22 1M 1M" \
		-c "write -P 0x33 $((3 * 1024 * 1024 + 777)) 5000" \
		-c "write -P 0x44 $((size / 2 - 123)) 70001" \
		-c "write -P 0x55 $((size - 4096)) 4095" \
		-c "write -P 0x66 $((size - 1)) 1" \
		"$img" >/dev/null || fail "qemu-io could not write into $img"
}

# same_disk A B: qemu-img's view of both disks is byte-identical (formats probed by qemu)
same_disk() {
	qemu-img compare ${3:+-f "$3"} ${4:+-F "$4"} "$1" "$2" >/dev/null 2>&1 || fail "$1 and $2 differ: $(qemu-img compare ${3:+-f "$3"} ${4:+-F "$4"} "$1" "$2" 2>&1)"
}

# raw bytes of an image as qemu reads them
qemu_raw() { qemu-img convert ${3:+-f "$3"} -O raw "$1" "$2" || fail "qemu-img convert $1"; }

# allocated KiB of a file
alloc_kib() { du -k "$1" | cut -f1; }
