# rot.sh: helpers for the rot scenarios: damage replica files behind the daemons' backs. An object
# file is a 4 KiB header, a checksum table and the data (sheep/store/checksum.c); data objects of
# 4 MiB start their data at byte 12288.
DATA_OFF=12288

# replicas OID: the object files holding OID on every node, one a line
replicas() { ls "$T"/*/obj/"$1" 2>/dev/null; }

# flip_byte FILE BLOCK [BYTE]: invert one data byte of 4 KiB block BLOCK
flip_byte() {
	python3 - "$1" $((DATA_OFF + $2 * 4096 + ${3:-100})) <<'PY' || fail "cannot flip a byte in $1"
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, 'r+b') as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PY
}

# data_of FILE: the data region of an object file (what must agree between replicas)
data_of() { tail -c +$((DATA_OFF + 1)) "$1"; }

# drop the page cache where allowed (the sheep reads with pread either way)
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# oid_of VDI INDEX: the oid of data object INDEX
oid_of() { collie vdi object "$1" -r | awk -v i="$2" '$1 == i {print $2}'; }

# slice_same VDI OFFSET LEN NODE: that range reads as in $T/d
slice_same() {
	collie vdi read "$1" "$2" "$3" -p "$(port_of "$4")" > "$T/slice" || fail "read $2+$3 via node $4"
	tail -c +$(($2 + 1)) "$T/d" | head -c "$3" | cmp -s - "$T/slice" || fail "$2+$3 via node $4 differs"
}
