# nbd.sh: helpers for the NBD scenarios (sourced after common.sh). Node N exports on NBD_BASE+N.
NBD_BASE=${NBD_BASE:-10800}
nbd_port() { echo $((NBD_BASE + $1)); }
nbd_uri() { echo "nbd://127.0.0.1:$(nbd_port "${2:-0}")/$1"; }

# start_nbd_cluster COUNT [COPIES]: like start_cluster, every node with --nbd
start_nbd_cluster() {
	local count=$1 copies=${2:-$1}
	for i in $(seq 0 $((count - 1))); do start_sheep "$i" --nbd "$(nbd_port "$i")"; done
	wait_nodes "$count"
	collie cluster format -c "$copies" -p "$(port_of 0)" >/dev/null || fail "format"
}

need() { command -v "$1" >/dev/null || skip "$1 is not installed"; }

# qio URI CMD...: qemu-io on a raw NBD export; any failed command fails the scenario
qio() {
	local uri=$1; shift
	local args=() out
	for c in "$@"; do args+=(-c "$c"); done
	out=$(timeout 120 qemu-io -f raw "${args[@]}" "$uri" 2>&1) || fail "qemu-io $*: $out"
	case "$out" in *"Pattern verification failed"*|*"failed"*|*"error"*|*"Error"*) fail "qemu-io $*: $out" ;; esac
	printf '%s\n' "$out" > "$T/qio.out"
}
