# bench/common.sh: what every bench script shares (sourced): a private network and PID namespace
# when it can have one, and timing helpers. Sets SRC and BUILD.
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build}
if [ -z "${BENCH_IN_NS:-}" ] && unshare -m -n -p -f --kill-child true 2>/dev/null; then
	BENCH_IN_NS=1 exec unshare -m -n -p -f --kill-child --mount-proc "$0" "$@"
fi
[ -n "${BENCH_IN_NS:-}" ] && ip link set lo up

now_ns() { date +%s%N; }
# elapsed nanoseconds of one run of a command (its output discarded; a failure ends the bench)
time_ns() {
	local t0; t0=$(now_ns)
	"$@" >/dev/null 2>&1 || { echo "$(basename "$0"): failed: $*" >&2; exit 1; }
	echo $(( $(now_ns) - t0 ))
}
# median of the numbers on standard input
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
