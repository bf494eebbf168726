# zk.sh: a private ZooKeeper server for a scenario (sourced by common.sh): Debian's zookeeper
# jars run as a standalone server bound to loopback, with its own zoo.cfg and data dir under
# $T/zk, started and stopped by pid. Never the host's zookeeper service.
ZK_PORT=${ZK_PORT:-2181}
ZK_DIR=$T/zk
ZK_TICK_MS=${ZK_TICK_MS:-250}          # sessions may last 2..40 ticks
ZK_SESSION_MS=${ZK_SESSION_MS:-3000}   # what the sheep ask for (timeout= of -c zookeeper:)
ZK_PID=

zk_classpath() {
	local j=/usr/share/java cp= f
	for f in zookeeper zookeeper-jute slf4j-api slf4j-nop metrics-core commons-cli; do
		[ -f "$j/$f.jar" ] || return 1
		cp=$cp${cp:+:}$j/$f.jar
	done
	echo "$cp"
}

# zk_ruok: the server answers "imok" to the four-letter command ruok
zk_ruok() {
	local r
	r=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf ruok >&3 && cat <&3" 2>/dev/null)
	[ "$r" = imok ]
}

# zk_start: start (or restart, keeping its data) the server; wait until it answers
zk_start() {
	local cp
	command -v java >/dev/null || skip "no Java runtime (default-jre-headless)"
	cp=$(zk_classpath) || skip "Debian's zookeeper jars are not installed"
	mkdir -p "$ZK_DIR/data"
	cat > "$ZK_DIR/zoo.cfg" <<EOC
tickTime=$ZK_TICK_MS
minSessionTimeout=$((2 * ZK_TICK_MS))
maxSessionTimeout=$((40 * ZK_TICK_MS))
dataDir=$ZK_DIR/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,cons
forceSync=no
EOC
	java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$cp" \
		org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_DIR/zoo.cfg" >>"$ZK_DIR/server.log" 2>&1 &
	ZK_PID=$!
	# the JVM starts slowly on a busy machine: a minute before giving up
	for _ in $(seq 600); do
		zk_ruok && return 0
		kill -0 "$ZK_PID" 2>/dev/null || fail "zookeeper exited: $(tail -3 "$ZK_DIR/server.log")"
		sleep 0.1
	done
	fail "zookeeper did not answer ruok within 60 s: $(tail -3 "$ZK_DIR/server.log")"
}

# zk_stop [SIGNAL]: stop the server by its pid and wait for it to go
zk_stop() {
	[ -n "$ZK_PID" ] || return 0
	kill "-${1:-TERM}" "$ZK_PID" 2>/dev/null
	for _ in $(seq 300); do
		kill -0 "$ZK_PID" 2>/dev/null || { wait "$ZK_PID" 2>/dev/null; ZK_PID=; return 0; }
		sleep 0.1
	done
	kill -KILL "$ZK_PID" 2>/dev/null
	wait "$ZK_PID" 2>/dev/null
	ZK_PID=
}

zk_pause() { kill -STOP "$ZK_PID"; }
zk_resume() { kill -CONT "$ZK_PID"; }

# the -c argument for the sheep: this server, the scenario's own base znode
zk_spec() { echo "zookeeper:127.0.0.1:$ZK_PORT/sheepfold-test,timeout=$ZK_SESSION_MS"; }
