# common.sh: helpers for functional scenarios (sourced). A scenario runs in its own namespaces
# with TMPDIR_TEST as scratch space; BUILD holds sheep and collie.
set -u
T=${TMPDIR_TEST:?}
SHEEP=${SHEEP:-$BUILD/sheep}
COLLIE=${COLLIE:-$BUILD/collie}
# DRIVER: local (default), corosync or zookeeper (a private server, tests/functional/zk.sh).
# TEST_DRIVER overrides the scenario's own choice: the driver-independent scenarios run on any
# driver (204 runs them on ZooKeeper).
DRIVER=${TEST_DRIVER:-${DRIVER:-local}}
BASE_PORT=${BASE_PORT:-7000}

. "$SRC/tests/functional/zk.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
say() { echo "== $*"; }

port_of() { echo $((BASE_PORT + $1)); }

driver_spec() {
	case $DRIVER in
	local) echo "local:$T/cluster" ;;
	zookeeper) zk_spec ;;
	*) echo "$DRIVER" ;;
	esac
}

start_corosync() {
	command -v corosync >/dev/null || skip "corosync is not installed"
	cat > "$T/corosync.conf" <<EOC
totem {
	version: 2
	cluster_name: sheepfold-test
	transport: knet
	crypto_cipher: none
	crypto_hash: none
	token: 1000
}
nodelist {
	node {
		ring0_addr: 127.0.0.1
		name: node1
		nodeid: 1
	}
}
quorum {
	provider: corosync_votequorum
}
logging {
	to_logfile: yes
	logfile: $T/corosync.log
	to_syslog: no
	to_stderr: no
	timestamp: on
}
EOC
	corosync -f -c "$T/corosync.conf" >"$T/corosync.out" 2>&1 &
	for _ in $(seq 100); do
		corosync-cpgtool >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "corosync did not start: $(tail -3 "$T/corosync.log" 2>/dev/null)"
}

# start_sheep N [extra options]: node N on port BASE_PORT+N, zone N, store $T/N
start_sheep() {
	local n=$1; shift
	[ "$DRIVER" = zookeeper ] && [ -z "$ZK_PID" ] && zk_start
	$SHEEP -c "$(driver_spec)" -y 127.0.0.1 -p "$(port_of "$n")" -z "$n" -l debug "$@" "$T/$n" ||
		fail "sheep $n did not start"
}

# kill_sheep N [signal]
kill_sheep() {
	local sig=${2:-KILL}
	pkill "-$sig" -f "sheep -c $(driver_spec) -y 127.0.0.1 -p $(port_of "$1") .*$T/" || true
	for _ in $(seq 100); do
		pgrep -f "sheep -c $(driver_spec) -y 127.0.0.1 -p $(port_of "$1") .*$T/" >/dev/null || return 0
		sleep 0.05
	done
	fail "sheep $1 did not die"
}

collie() { $COLLIE "$@"; }

# wait_nodes COUNT [NODE]: until NODE's node list shows COUNT nodes
wait_nodes() {
	local want=$1 n=${2:-0} got=
	for _ in $(seq 200); do
		got=$(collie node list -r -p "$(port_of "$n")" 2>/dev/null | wc -l)
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	fail "node $n sees $got nodes, not $want"
}

# start_cluster COUNT [COPIES]: COUNT nodes, formatted
start_cluster() {
	local count=$1 copies=${2:-$1}
	[ "$DRIVER" = corosync ] && start_corosync
	[ "$DRIVER" = zookeeper ] && [ -z "$ZK_PID" ] && zk_start
	for i in $(seq 0 $((count - 1))); do start_sheep "$i"; done
	wait_nodes "$count"
	collie cluster format -c "$copies" -p "$(port_of 0)" >/dev/null || fail "format"
}

# random file of SIZE MiB at PATH
random_file() { head -c "$(($2 * 1024 * 1024))" /dev/urandom > "$1"; }

# assert_same_read VDI FILE NODE [OFFSET LEN]
assert_same_read() {
	collie vdi read "$1" ${4:-} ${5:-} -p "$(port_of "$3")" > "$T/readback" || fail "vdi read $1 via node $3"
	cmp -s "$T/readback" "$2" || fail "vdi read $1 via node $3 differs from $2"
}

# collie's exit statuses (collie(8))
EXIT_FAILED=1 EXIT_SYSFAIL=2 EXIT_EXISTS=3 EXIT_FULL=4 EXIT_MISSING=5 EXIT_USAGE=64

# expect_status STATUS DESCRIPTION COMMAND...: the command must exit STATUS with an error message
expect_status() {
	local want=$1 what=$2; shift 2
	local out rc
	out=$("$@" 2>&1 >/dev/null); rc=$?
	[ $rc = "$want" ] || fail "$what: exit status $rc, not $want (output: $out)"
	[ "$(printf '%s\n' "$out" | grep -c .)" -ge 1 ] || fail "$what: no error message"
	case "$out" in *"collie: "*|*"sheep: "*) ;; *) fail "$what: error does not say who failed: $out" ;; esac
}

# expect_fail DESCRIPTION COMMAND...: the command must exit 1 (the command failed) with an error
expect_fail() { expect_status 1 "$@"; }
expect_usage() { expect_status 64 "$@"; }
expect_missing() { expect_status 5 "$@"; }
expect_exists() { expect_status 3 "$@"; }
expect_sysfail() { expect_status 2 "$@"; }

# only this scenario's daemons: their command lines name its scratch directory (a scenario run
# outside a private PID namespace must not touch anybody else's sheep or corosync)
cleanup_cluster() {
	pkill -f "sheep -c .* $T/" 2>/dev/null
	pkill -f "corosync -f -c $T/" 2>/dev/null
	zk_resume 2>/dev/null
	zk_stop
	true
}
trap cleanup_cluster EXIT

# wait_recovery [NODE] [SECONDS]: until every node has finished recovering the current epoch and
# knows that all the others have too
wait_recovery() {
	local n=${1:-0} secs=${2:-120} out
	for _ in $(seq $((secs * 10))); do
		out=$(collie node recovery -r -p "$(port_of "$n")" 2>/dev/null)
		if [ -n "$out" ] && ! printf '%s\n' "$out" | awk '$4 != "done" || $9 != 1 {bad=1} END {exit !bad}'; then
			return 0
		fi
		sleep 0.1
	done
	fail "recovery did not finish: $(collie node recovery -p "$(port_of "$n")" 2>&1)"
}

# objects stored on node N (not counting those set aside)
stored_objects() { ls "$T/$1/obj" 2>/dev/null | grep -c '^[0-9a-f]\{16\}$'; }

# use_fault_sheep: this scenario's sheep is the test build with --fault-inject (make
# FAULT_INJECT=1, which make check builds first); node N then reads its rules from $T/faults.N
use_fault_sheep() {
	SHEEP=${FI_SHEEP:-$SRC/build-fi/sheep}
	[ -x "$SHEEP" ] || fail "$SHEEP is missing: make FAULT_INJECT=1 build-fi/sheep"
	start_sheep() {
		local n=$1; shift
		$SHEEP -c "$(driver_spec)" -y 127.0.0.1 -p "$(port_of "$n")" -z "$n" -l debug \
			--fault-inject "$T/faults.$n" "$@" "$T/$n" || fail "sheep $n did not start"
	}
}

# faults N RULE...: node N's fault rules from now on, one a line (none: no faults)
faults() {
	local n=$1; shift
	printf '%s\n' "$@" > "$T/faults.$n.new" && mv "$T/faults.$n.new" "$T/faults.$n"
}
