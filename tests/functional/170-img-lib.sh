# 170-img-lib.sh: helpers for the image-format scenarios 170-199 (sourced after common.sh).
# qemu-img and qemu-io are the oracle: they write patterns into images we read, and check and
# compare the images we write.
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || skip "qemu-utils is not installed"

vsize() { qemu-img info -f "$2" --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# pattern IMG FMT: known patterns at scattered offsets: aligned, across cluster boundaries,
# unaligned, in the middle and the very last byte
pattern() {
	local img=$1 fmt=$2 size w=() p off len
	size=$(vsize "$img" "$fmt")
	# pattern:offset:length; writes that do not fit a small disk are left out
	for p in 11:0:4096 22:65533:7 33:$((1024 * 1024 + 100)):200000 44:$((size / 2 - 7)):70001 \
		 66:$((size - 70000)):3000 55:$((size - 1)):1; do
		IFS=: read -r pat off len <<< "$p"
		[ "$off" -ge 0 ] && [ $((off + len)) -le "$size" ] && w+=(-c "write -P 0x$pat $off $len")
	done
	qemu-io -f "$fmt" "${w[@]}" "$img" >/dev/null || fail "qemu-io could not write $img"
}

# same_as_qemu IMG FMT: our raw conversion equals qemu-img's, and we detect the format
same_as_qemu() {
	local img=$1 fmt=$2
	qemu-img convert -f "$fmt" -O raw "$img" "$T/ref.raw" || fail "qemu-img convert $img"
	rm -f "$T/our.raw"
	collie image convert -f "$fmt" -O raw "$img" "$T/our.raw" || fail "convert $img ($fmt) to raw"
	[ "$(stat -c %s "$T/ref.raw")" = "$(stat -c %s "$T/our.raw")" ] || fail "$img ($fmt): our raw has $(stat -c %s "$T/our.raw") bytes, qemu-img's $(stat -c %s "$T/ref.raw")"
	# (qemu-img compare skips holes: much faster than cmp on big sparse files)
	qemu-img compare -q -f raw -F raw "$T/ref.raw" "$T/our.raw" || fail "$img ($fmt): our raw differs from qemu-img's: $(qemu-img compare -f raw -F raw "$T/ref.raw" "$T/our.raw" 2>&1 | head -1)"
}

# written_ok RAW FMT IMG [CONVERT OPTIONS...]: write RAW as FMT; qemu-img check and compare agree
written_ok() {
	local raw=$1 fmt=$2 img=$3; shift 3
	rm -f "$img"
	collie image convert -O "$fmt" "$@" "$raw" "$img" || fail "convert $raw to $fmt $*"
	local rc=0
	qemu-img check -q -f "$fmt" "$img" 2>/dev/null || rc=$?
	[ $rc = 0 ] || [ $rc = 63 ] || fail "qemu-img check $img ($fmt $*): exit $rc"
	qemu-img compare -q -f raw -F "$fmt" "$raw" "$img" || fail "qemu-img compare $raw $img ($fmt $*) differ"
}

# sparse_raw FILE SIZE: a sparse raw image with data at scattered offsets and in the last byte
sparse_raw() {
	local f=$1 size=$2
	rm -f "$f"
	truncate -s "$size" "$f"
	head -c 300000 /dev/urandom | dd of="$f" bs=4096 seek=3 conv=notrunc status=none
	head -c 5000 /dev/urandom | dd of="$f" bs=1 seek=$((size / 3 + 11)) conv=notrunc status=none
	head -c 1 /dev/urandom | dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc status=none
	head -c 1048576 /dev/urandom | dd of="$f" bs=1M seek=$((size / 1048576 / 2)) conv=notrunc status=none
}

# bad_image DESCRIPTION FILE [FMT]: collie image info and convert refuse it with exit 1, one line
bad_image() {
	local what=$1 img=$2 fmt=${3:-} out rc
	out=$(collie image info ${fmt:+-f $fmt} "$img" 2>&1 >/dev/null); rc=$?
	[ $rc = 1 ] || fail "$what: info exit status $rc, not 1 ($out)"
	[ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] || fail "$what: not a one-line error: $out"
	case "$out" in *"$(basename "$img")"*) ;; *) fail "$what: error does not name the file: $out" ;; esac
	rm -f "$T/bad.raw"
	out=$(timeout 20 "$COLLIE" image convert ${fmt:+-f $fmt} -O raw "$img" "$T/bad.raw" 2>&1 >/dev/null); rc=$?
	[ $rc = 1 ] || fail "$what: convert exit status $rc, not 1 ($out)"
	echo "   $what: $out"
}

# poke FILE OFFSET HEXBYTES: overwrite bytes in place
poke() { printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# bad_data DESCRIPTION FILE [FMT]: the header is fine but reading the disk fails: convert exits 1
# with a one-line error naming the file
bad_data() {
	local what=$1 img=$2 fmt=${3:-} out rc
	rm -f "$T/bad.raw"
	out=$(timeout 20 "$COLLIE" image convert ${fmt:+-f $fmt} -O raw "$img" "$T/bad.raw" 2>&1 >/dev/null); rc=$?
	[ $rc = 1 ] || fail "$what: convert exit status $rc, not 1 ($out)"
	[ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] || fail "$what: not a one-line error: $out"
	case "$out" in *"$(basename "$img")"*) ;; *) fail "$what: error does not name the file: $out" ;; esac
	echo "   $what: $out"
}
