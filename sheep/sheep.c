/* sheep.c: the daemon's entry point: options, the store directory and its lock, daemonizing
 * (the parent exits only once the node has joined, with the child's verdict), and the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "event.h"
#include "internal_proto.h"
#include "logger.h"
#include "net.h"
#include "ring.h"
#include "sheepdog_proto.h"
#include "util.h"
#include "work.h"
#include "cluster_view.h"
#include "config.h"
#include "gateway.h"
#include "group.h"
#include "nbd.h"
#include "nbd_tls.h"
#include "node_disks.h"
#include "node_weight.h"
#include "ops.h"
#include "peer.h"
#include "recovery.h"
#include "repair.h"
#include "scrub.h"
#include "request.h"
#include "store/md.h"
#include "store/fault.h"
#include "store/store.h"
#include "store_health.h"
#include "vdi.h"
#include "vdi_state.h"
#include "access.h"
#include "conn_limits.h"

static int ready_fd = -1;   /* write end of the pipe to the waiting parent */
static char **saved_argv;   /* for sheep_restart */
static char md_disk_paths[MD_MAX_DISKS][SD_MD_PATH_LEN];   /* sheep META,DISK1,...: the disks */
static char *md_disks[MD_MAX_DISKS];                      /* md_disk_paths, for store_init */
static int nr_md_disks;

/* Start this sheep afresh (same options): it leaves the cluster and joins again as a newcomer.
 * A node that lost the majority uses it once the others are reachable again. */
static void __attribute__((noreturn)) sheep_restart(const char *why)
{
	sd_warn("restarting to rejoin the cluster: %s", why);
	group_leave();
	log_close();
	execv("/proc/self/exe", saved_argv);
	_exit(1);
}

/* the node has joined (or founded) the cluster: release a waiting parent */
static void sheep_ready(void)
{
	if (ready_fd >= 0) {
		char ok = 0;
		if (write(ready_fd, &ok, 1) < 0)
			sd_warn("cannot notify the parent: %m");
		close(ready_fd);
		ready_fd = -1;
	}
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: sheep [OPTION]... DIR\n"
		"   or: sheep [OPTION]... META,DISK1[,DISK2]...\n"
		"Run a Sheepfold storage node that keeps its objects, epochs and log in DIR; or its\n"
		"config, epochs and log in META and its objects spread over the disk directories\n"
		"(collie node md shows, plugs and unplugs them).\n\n"
		"  -p, --port PORT        listen on PORT (default 7000)\n"
		"  -b, --bindaddr ADDR    listen on ADDR only (default: all addresses)\n"
		"  -y, --myaddr ADDR      address other nodes use to reach this one\n"
		"  -c, --cluster DRIVER   corosync (default), local[:DIR] (one machine, no corosync) or\n"
		"                         zookeeper:HOST:PORT[,HOST:PORT...][/PATH][,timeout=MS]\n"
		"  -z, --zone ZONE        failure zone (replicas go to distinct zones; default: the\n"
		"                         host address, so copies land on distinct machines)\n"
		"  -V, --vnodes N         virtual nodes on the ring, fixed (0 = gateway only; default:\n"
		"                         from the capacity, one per 2 GiB, 1 to 8192)\n"
		"      --capacity SIZE    the weight of this node (K/M/G/T; default: the size of the\n"
		"                         filesystem under DIR, or under the disks, each filesystem\n"
		"                         once); collie node reweight applies a change\n"
		"  -l, --loglevel LEVEL   emerg, err, warn, info (default) or debug, or 0-7\n"
		"  -o, --log FILE         log to FILE (default DIR/sheep.log)\n"
		"  -f, --foreground       stay in the foreground and log to stderr unless -o\n"
		"  -P, --pidfile FILE     write the daemon's pid to FILE\n"
		"  -R, --recovery N[:MS]  recovery throttle: N objects fetched at once (default 4),\n"
		"                         and a pause of MS milliseconds after each (default 0)\n"
		"      --nbd [ADDR:]PORT  export VDIs over NBD on PORT (ADDR default 127.0.0.1; off by default)\n"
		"      --nbd-tls-psk FILE  NBD clients must use TLS with a key of FILE (identity:hexkey\n"
		"                         lines, as qemu's tls-creds-psk keys.psk)\n"
		"      --key-file FILE    the cluster key (default $" SD_KEY_FILE_ENV "); without one the node\n"
		"                         is open to anyone who can reach its port\n"
		"      --guest-allow CIDR[,CIDR]  networks whose clients may run guest opcodes without the\n"
		"                         key (default: loopback and this node's address)\n"
		"      --max-clients N    client connections in all (default 1024)\n"
		"      --max-clients-per-addr N  from one address (default 256)\n"
		"      --nbd-max-clients N  NBD connections in all (default 1024)\n"
		"      --nbd-max-clients-per-addr N  NBD connections from one address (default 256)\n"
		"      --request-timeout S  close a connection whose request (or NBD negotiation) stalls\n"
		"                         S seconds (default 5)\n"
		"      --max-client-buffer MIB  request and reply bytes one connection may hold (default 64)\n"
		"      --max-buffer MIB   the same for all connections together (default 1024)\n"
		"      --max-cluster-ops N  cluster operations one connection may have in flight (default 8)\n"
		"      --scrub-interval S  verify every object of this node every S seconds, repairing bad\n"
		"                         ones (default 86400; 0 = only on collie node scrub start)\n"
		"      --scrub-rate SIZE  read at most SIZE bytes per second when scrubbing (K/M/G; default 16M)\n"
		"      --fd-cache N       keep up to N object files open (default 1024, at most a quarter\n"
		"                         of the open-file limit; 0 = open and close one per request)\n"
		"      --space-warn PCT   warn when the store is PCT%% full (default 90; 0 = never)\n"
		"      --log-ratelimit BURST[/S]  messages per call site per S seconds (default 10/5; 0 = all)\n"
#ifdef SD_FAULT_INJECT
		"      --fault-inject FILE  (test build) fail, delay or corrupt store I/O as FILE says\n"
#endif
		"  -h, --help             show this help\n"
		"  -v, --version          show the version\n");
}

static const struct option long_opts[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "bindaddr", required_argument, NULL, 'b' },
	{ "myaddr", required_argument, NULL, 'y' },
	{ "cluster", required_argument, NULL, 'c' },
	{ "zone", required_argument, NULL, 'z' },
	{ "vnodes", required_argument, NULL, 'V' },
	{ "loglevel", required_argument, NULL, 'l' },
	{ "log", required_argument, NULL, 'o' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "pidfile", required_argument, NULL, 'P' },
	{ "recovery", required_argument, NULL, 'R' },
	{ "nbd", required_argument, NULL, 256 },
	{ "nbd-tls-psk", required_argument, NULL, 263 },
	{ "key-file", required_argument, NULL, 257 },
	{ "guest-allow", required_argument, NULL, 258 },
	{ "capacity", required_argument, NULL, 259 },
	{ "max-clients", required_argument, NULL, 300 },
	{ "max-clients-per-addr", required_argument, NULL, 300 },
	{ "nbd-max-clients", required_argument, NULL, 300 },
	{ "nbd-max-clients-per-addr", required_argument, NULL, 300 },
	{ "request-timeout", required_argument, NULL, 300 },
	{ "max-client-buffer", required_argument, NULL, 300 },
	{ "max-buffer", required_argument, NULL, 300 },
	{ "max-cluster-ops", required_argument, NULL, 300 },
	{ "log-ratelimit", required_argument, NULL, 300 },
	{ "space-warn", required_argument, NULL, 260 },
	{ "scrub-interval", required_argument, NULL, 261 },
	{ "scrub-rate", required_argument, NULL, 262 },
	{ "fd-cache", required_argument, NULL, 264 },
#ifdef SD_FAULT_INJECT
	{ "fault-inject", required_argument, NULL, 400 },
#endif
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

static int parse_uint(const char *s, const char *what, uint64_t max, uint64_t *out)
{
	if (parse_u64(s, out) < 0 || *out > max) {
		fprintf(stderr, "sheep: invalid %s '%s' (0 to %llu)\n", what, s, (unsigned long long)max);
		return -1;
	}
	return 0;
}

/* --nbd [ADDR:]PORT, ADDR may be [IPv6] */
static int parse_nbd(const char *arg, char *addr, size_t len, uint64_t *port)
{
	const char *colon = strrchr(arg, ':'), *p = arg;
	snprintf(addr, len, "127.0.0.1");
	if (colon) {
		size_t n = colon - arg;
		if (n && arg[0] == '[' && arg[n - 1] == ']') {
			arg++;
			n -= 2;
		}
		if (!n || n >= len) {
			fprintf(stderr, "sheep: invalid --nbd address in '%s'\n", p);
			return -1;
		}
		memcpy(addr, arg, n);
		addr[n] = 0;
		p = colon + 1;
	}
	if (parse_uint(p, "NBD port", 65535, port) < 0)
		return -1;
	if (!*port) {
		fprintf(stderr, "sheep: invalid NBD port '%s' (1 to 65535)\n", p);
		return -1;
	}
	return 0;
}

static void pick_myaddr(char *buf, size_t len)
{
	struct ifaddrs *ifs, *i;
	snprintf(buf, len, "127.0.0.1");
	if (getifaddrs(&ifs) < 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		if ((ntohl(a.s_addr) >> 24) == 127)
			continue;
		inet_ntop(AF_INET, &a, buf, len);
		break;
	}
	freeifaddrs(ifs);
}

static void signal_handler(int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	sd_info("signal %u: leaving the cluster", si.ssi_signo);
	group_leave_and_exit();
}

static int lock_store(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/lock", dir);
	/* read-only: an open file for writing would keep a disk from being remounted read-only */
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -EBUSY;
	}
	return fd;   /* held for the life of the process */
}

/* parent side of daemonizing: wait for the child's verdict */
static int wait_for_child(pid_t pid, int rfd)
{
	char c;
	ssize_t n = read(rfd, &c, 1);
	if (n == 1 && c == 0)
		return 0;
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1;
}

/* what the command line asks for */
struct sheep_options {
	const char *bindaddr, *myaddr, *driver, *logfile, *pidfile;
	const char *key_file, *guest_allow, *fault_file, *nbd_tls_psk;
	uint64_t port, zone, vnodes, nbd_port;
	bool foreground, zone_set, vnodes_set;
	uint64_t capacity, space_warn, scrub_interval, scrub_rate, fd_cache;
	int loglevel;
	char myaddr_buf[64], nbd_addr[256];
};

#define GO_ON (-1)   /* a start-up step returns this, or the exit status to leave with */

/* -R N[:MS] */
static int parse_recovery_throttle(const char *arg)
{
	char nbuf[32];
	const char *colon = strchr(arg, ':');
	uint64_t inflight, pause = 0;
	snprintf(nbuf, sizeof(nbuf), "%.*s", colon ? (int)(colon - arg) : (int)strlen(arg), arg);
	if (parse_uint(nbuf, "recovery objects in flight", SD_RECOVERY_MAX_INFLIGHT, &inflight) < 0 || !inflight ||
	    (colon && parse_uint(colon + 1, "recovery pause", SD_RECOVERY_MAX_PAUSE_MS, &pause) < 0)) {
		if (!inflight)
			fprintf(stderr, "sheep: invalid recovery throttle '%s' (N[:MS], N 1 to 64)\n", arg);
		return -1;
	}
	recovery_inflight = (int)inflight;
	recovery_pause_ms = (uint32_t)pause;
	return 0;
}

static int parse_options(int argc, char **argv, struct sheep_options *o)
{
	int c, longindex = 0;
	while ((c = getopt_long(argc, argv, "p:b:y:c:z:V:l:o:fP:R:hv", long_opts, &longindex)) != -1) {
		switch (c) {
		case 'p':
			if (parse_uint(optarg, "port", 65535, &o->port) < 0 || !o->port)
				return 1;
			break;
		case 'b': o->bindaddr = optarg; break;
		case 'y': o->myaddr = optarg; break;
		case 'c': o->driver = optarg; break;
		case 'z':
			if (parse_uint(optarg, "zone", UINT32_MAX, &o->zone) < 0)
				return 1;
			o->zone_set = true;
			break;
		case 'V':
			if (parse_uint(optarg, "vnodes", 65535, &o->vnodes) < 0)
				return 1;
			o->vnodes_set = true;
			break;
		case 'R':
			if (parse_recovery_throttle(optarg) < 0)
				return 1;
			break;
		case 'l':
			o->loglevel = log_level_from_name(optarg);
			if (o->loglevel < 0) {
				fprintf(stderr, "sheep: invalid log level '%s'\n", optarg);
				return 1;
			}
			break;
		case 'o': o->logfile = optarg; break;
		case 'f': o->foreground = true; break;
		case 'P': o->pidfile = optarg; break;
		case 256:
			if (parse_nbd(optarg, o->nbd_addr, sizeof(o->nbd_addr), &o->nbd_port) < 0)
				return 1;
			break;
		case 257: o->key_file = optarg; break;
		case 263: o->nbd_tls_psk = optarg; break;
		case 400: o->fault_file = optarg; break;
		case 258: o->guest_allow = optarg; break;
		case 300:
			if (limits_option(long_opts[longindex].name, optarg) < 0)
				return 1;
			break;
		case 260:
			if (parse_uint(optarg, "space warning percentage", 100, &o->space_warn) < 0)
				return 1;
			break;
		case 261:
			if (parse_uint(optarg, "scrub interval", UINT32_MAX, &o->scrub_interval) < 0)
				return 1;
			break;
		case 262:
			if (parse_size(optarg, &o->scrub_rate) < 0 || !o->scrub_rate) {
				fprintf(stderr, "sheep: invalid scrub rate '%s' (bytes per second, such as 16M)\n", optarg);
				return 1;
			}
			break;
		case 264:
			if (parse_uint(optarg, "fd cache size", 1u << 20, &o->fd_cache) < 0)
				return 1;
			break;
		case 259:
			if (parse_size(optarg, &o->capacity) < 0 || !o->capacity) {
				fprintf(stderr, "sheep: invalid capacity '%s' (a size such as 500G or 2T)\n", optarg);
				return 1;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'v': printf("sheep (Sheepfold) 0.1\n"); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "sheep: exactly one store directory is needed\n");
		usage(stderr);
		return 1;
	}
	return GO_ON;
}

/* META,DISK1,DISK2,...: every disk an existing directory, none twice, none the META itself; the
 * disks in md_disks as absolute paths, each locked for this sheep. arg is cut at the first comma. */
static int open_md_disks(char *arg)
{
	char *list = strchr(arg, ',');
	*list++ = 0;
	if (!*arg) {
		fprintf(stderr, "sheep: no META directory before the disks (META,DISK1,DISK2,...)\n");
		return 1;
	}
	char meta[4096];
	if (!realpath(arg, meta))
		meta[0] = 0;    /* made later: then no existing disk is it */
	for (char *p = list, *next; p; p = next) {
		char real[4096];
		struct stat st;
		next = strchr(p, ',');
		if (next)
			*next++ = 0;
		if (!*p) {
			fprintf(stderr, "sheep: empty disk path in the list of disks (META,DISK1,DISK2,...)\n");
			return 1;
		}
		if (nr_md_disks == MD_MAX_DISKS) {
			fprintf(stderr, "sheep: more than %d disks\n", MD_MAX_DISKS);
			return 1;
		}
		errno = 0;
		if (!realpath(p, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "sheep: disk %s: %s\n", p, errno ? strerror(errno) : "not a directory");
			return 1;
		}
		if (strlen(real) >= SD_MD_PATH_LEN) {
			fprintf(stderr, "sheep: disk path %s too long (at most %d bytes)\n", real, SD_MD_PATH_LEN - 1);
			return 1;
		}
		if (!strcmp(real, meta)) {
			fprintf(stderr, "sheep: disk %s is the META directory itself\n", real);
			return 1;
		}
		for (int i = 0; i < nr_md_disks; i++)
			if (!strcmp(md_disks[i], real)) {
				fprintf(stderr, "sheep: disk %s given twice\n", real);
				return 1;
			}
		if (lock_store(real) < 0) {
			fprintf(stderr, "sheep: disk %s is in use by another sheep\n", real);
			return 1;
		}
		memcpy(md_disk_paths[nr_md_disks], real, strlen(real) + 1);
		md_disks[nr_md_disks] = md_disk_paths[nr_md_disks];
		nr_md_disks++;
	}
	return GO_ON;
}

/* the store directory, made if missing, as an absolute path in sys->dir, locked for this sheep;
 * with disks after it (META,DISK1,...), those too */
static int open_store_dir(char *arg)
{
	if (strlen(arg) > 3000) {
		fprintf(stderr, "sheep: store path too long\n");
		return 1;
	}
	if (strchr(arg, ',')) {
		static char meta_arg[3008];    /* argv stays whole for sheep_restart */
		snprintf(meta_arg, sizeof(meta_arg), "%s", arg);
		int ret = open_md_disks(meta_arg);
		if (ret != GO_ON)
			return ret;
		arg = meta_arg;    /* now META alone */
	}
	if (!realpath(arg, sys->dir)) {
		if (mkdir_p(arg, 0755) < 0 || !realpath(arg, sys->dir)) {
			fprintf(stderr, "sheep: cannot use store directory %s: %s\n", arg, strerror(errno));
			return 1;
		}
	}
	struct stat st;
	if (stat(sys->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "sheep: %s is not a directory\n", sys->dir);
		return 1;
	}
	if (lock_store(sys->dir) < 0) {
		fprintf(stderr, "sheep: %s is in use by another sheep\n", sys->dir);
		return 1;
	}
	return GO_ON;
}

/* this node as the others will see it: address, ports, vnodes, zone, space */
static int describe_this_node(struct sheep_options *o)
{
	if (!o->myaddr) {
		if (o->bindaddr && strcmp(o->bindaddr, "0.0.0.0") && strcmp(o->bindaddr, "::"))
			o->myaddr = o->bindaddr;
		else {
			pick_myaddr(o->myaddr_buf, sizeof(o->myaddr_buf));
			o->myaddr = o->myaddr_buf;
		}
	}
	if (str_to_addr(o->myaddr, sys->this_node.addr) < 0) {
		fprintf(stderr, "sheep: invalid address '%s'\n", o->myaddr);
		return 1;
	}
	sys->this_node.port = o->port;
	sys->this_node.nbd_port = o->nbd_port;
	sys->this_node.zone = o->zone_set ? (uint32_t)o->zone : ring_zone_of_addr(sys->this_node.addr);
	sys->capacity = o->capacity;
	sys->fixed_vnodes = o->vnodes_set;
	sys->this_node.space = node_capacity();
	sys->this_node.nr_vnodes = o->vnodes_set ? (uint16_t)o->vnodes : ring_vnodes_for_capacity(sys->this_node.space);
	sys->nr_copies = SD_DEFAULT_COPIES;
	sys->block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	if (sheep_auth_setup(auth_key_file_choice(o->key_file), o->guest_allow, sys->this_node.addr) < 0)
		return 1;
	return GO_ON;
}

/* fail now, in the foreground, if a port cannot be had */
static int probe_ports(const struct sheep_options *o)
{
	int listen_probe = listen_tcp(o->bindaddr, o->port);
	if (listen_probe < 0) {
		fprintf(stderr, "sheep: cannot listen on %s:%d: %s\n", o->bindaddr ? o->bindaddr : "*", (int)o->port,
			strerror(-listen_probe));
		return 1;
	}
	close(listen_probe);
	if (o->nbd_port) {
		int nbd_probe = listen_tcp(o->nbd_addr, o->nbd_port);
		if (nbd_probe < 0) {
			fprintf(stderr, "sheep: cannot listen for NBD on %s:%d: %s\n", o->nbd_addr, (int)o->nbd_port,
				strerror(-nbd_probe));
			return 1;
		}
		close(nbd_probe);
	}
	if (o->nbd_tls_psk) {
		char err[512];
		if (!o->nbd_port) {
			fprintf(stderr, "sheep: --nbd-tls-psk needs --nbd\n");
			return 1;
		}
		if (nbd_tls_setup(o->nbd_tls_psk, err, sizeof(err)) < 0) {
			fprintf(stderr, "sheep: %s\n", err);
			return 1;
		}
	}
	return GO_ON;
}

/* Unless in the foreground: fork; the parent waits for the child's verdict (ready_fd) and
 * returns it, the child goes on. */
static int daemonize(const struct sheep_options *o)
{
	if (o->foreground)
		return GO_ON;
	int pfd[2];
	if (pipe(pfd) < 0) {
		perror("sheep: pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("sheep: fork");
		return 1;
	}
	if (pid > 0) {
		close(pfd[1]);
		return wait_for_child(pid, pfd[0]);
	}
	close(pfd[0]);
	ready_fd = pfd[1];
	setsid();
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		/* stderr stays until ready so errors reach the user; then /dev/null */
	}
	return GO_ON;
}

static int open_log_and_pidfile(const struct sheep_options *o, const char *logfile)
{
	int ret;
	if ((ret = log_open(logfile, o->loglevel, "sheep")) < 0) {
		fprintf(stderr, "sheep: cannot open log %s: %s\n", logfile, strerror(-ret));
		return 1;
	}
	if (o->pidfile) {
		FILE *fp = fopen(o->pidfile, "w");
		if (!fp) {
			fprintf(stderr, "sheep: cannot write pid file %s: %s\n", o->pidfile, strerror(errno));
			return 1;
		}
		fprintf(fp, "%d\n", getpid());
		fclose(fp);
	}
	return GO_ON;
}

/* SIGTERM and SIGINT arrive through a signalfd on the event loop */
static sigset_t block_exit_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return mask;
}

/* the store, its config and the state it gives the cluster view before joining */
static int load_store(void)
{
	int ret;
	if ((ret = store_init(sys->dir, md_disks, nr_md_disks)) < 0) {
		fprintf(stderr, "sheep: cannot initialize the store in %s: %s\n", sys->dir, strerror(-ret));
		return 1;
	}
	if (nr_md_disks)
		md_rebalance_start();    /* objects off their home disk (the disks changed) move there */
	if (!sys->fixed_vnodes) {    /* the disks are known now: the weight follows all of them */
		sys->this_node.space = node_capacity();
		sys->this_node.nr_vnodes = ring_vnodes_for_capacity(sys->this_node.space);
	}
	struct sheep_config cfg;
	ret = config_load(&cfg);
	if (ret == -EINVAL) {
		fprintf(stderr, "sheep: %s/config is not a Sheepfold store config\n", sys->dir);
		return 1;
	}
	if (ret == 0) {
		sys->ctime = cfg.ctime;
		sys->nr_copies = cfg.nr_copies;
		sys->copy_policy = cfg.copy_policy;
		sys->block_size_shift = cfg.block_size_shift;
		atomic_store(&sys->epoch, MAX(cfg.last_epoch, epoch_log_latest()));
	}
	atomic_store(&sys->status, SD_STATUS_WAIT_FOR_FORMAT);
	set_vnode_info(&sys->this_node, 0);
	return GO_ON;
}

/* worker threads, the listening ports, and the cluster join; the layers below get their hooks */
static int start_services(const struct sheep_options *o)
{
	int ret;
	sys->gateway_wq = create_work_queue("gway", 16);
	sys->io_wq = create_work_queue("io", 16);
	sys->block_wq = create_work_queue("block", 1);
	if (!sys->gateway_wq || !sys->io_wq || !sys->block_wq || recovery_init() < 0) {
		fprintf(stderr, "sheep: cannot start worker threads\n");
		return 1;
	}
	repair_init();
	peer_set_parent_reader(gateway_read_parent);
	node_disks_watch();
	if ((ret = scrub_init((uint32_t)o->scrub_interval, o->scrub_rate)) < 0) {
		fprintf(stderr, "sheep: cannot start the scrub: %s\n", strerror(-ret));
		return 1;
	}
	if ((ret = store_health_init((uint32_t)o->space_warn)) < 0) {
		fprintf(stderr, "sheep: cannot watch the store: %s\n", strerror(-ret));
		return 1;
	}
	if ((ret = create_listen_port(o->bindaddr, o->port)) < 0) {
		fprintf(stderr, "sheep: cannot listen on port %d: %s\n", (int)o->port, strerror(-ret));
		return 1;
	}
	if (o->nbd_port && (ret = nbd_init(o->nbd_addr, o->nbd_port)) < 0) {
		fprintf(stderr, "sheep: cannot export NBD on %s:%d: %s\n", o->nbd_addr, (int)o->nbd_port,
			strerror(-ret));
		return 1;
	}
	static const struct group_hooks group_hooks = {
		.lookup_op = get_sd_op,
		.complete_request = request_done,
		.epoch_transition = recovery_epoch_transition,
		.epoch_started = recovery_start,
		.fetch_state_from = fetch_vdi_state_from,
		.joined = sheep_ready,
		.restart = sheep_restart,
	};
	if ((ret = group_init(o->driver, &group_hooks)) < 0) {
		if (ret != -EINVAL)
			fprintf(stderr, "sheep: cannot join the cluster through %s\n", o->driver);
		return 1;
	}
	return GO_ON;
}

static void __attribute__((noreturn)) run_event_loop(bool foreground)
{
	for (;;) {
		event_loop_once(-1);
		if (ready_fd < 0 && !foreground) {
			static bool detached;
			if (!detached) {
				int devnull = open("/dev/null", O_RDWR);
				if (devnull >= 0) {
					dup2(devnull, 2);
					close(devnull);
				}
				detached = true;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sheep_options o = {
		.driver = "corosync", .port = SD_LISTEN_PORT, .space_warn = STORE_SPACE_WARN_DEFAULT,
		.fd_cache = STORE_FD_CACHE_DEFAULT, .scrub_interval = SCRUB_INTERVAL_DEFAULT, .scrub_rate = SCRUB_RATE_DEFAULT, .vnodes = SD_DEFAULT_VNODES, .loglevel = LOG_INFO_,
	};
	int ret;

	saved_argv = argv;
	if ((ret = parse_options(argc, argv, &o)) != GO_ON || (ret = open_store_dir(argv[optind])) != GO_ON ||
	    (ret = describe_this_node(&o)) != GO_ON || (ret = probe_ports(&o)) != GO_ON)
		return ret;
	char logpath[4200];
	const char *logfile = o.logfile;
	if (!logfile && !o.foreground) {
		snprintf(logpath, sizeof(logpath), "%s/sheep.log", sys->dir);
		logfile = logpath;
	}
	if ((ret = daemonize(&o)) != GO_ON || (ret = open_log_and_pidfile(&o, logfile)) != GO_ON)
		return ret;
	sigset_t mask = block_exit_signals();

	char nodestr[80];
	sd_info("starting sheep %s on %s, store %s", node_to_str(&sys->this_node, nodestr, sizeof(nodestr)),
		o.driver, sys->dir);
	sheep_auth_announce((int)o.port);
	limits_setup(o.nbd_port != 0);
	if (event_init() < 0 || init_work_queues() < 0 || vdi_init() < 0) {
		fprintf(stderr, "sheep: cannot initialize the event loop\n");
		return 1;
	}
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd >= 0)
		register_event(sfd, signal_handler, NULL, EPOLLIN);
#ifdef SD_FAULT_INJECT
	if (o.fault_file && (ret = fault_init(o.fault_file)) < 0) {
		fprintf(stderr, "sheep: cannot use fault rules %s: %s\n", o.fault_file, strerror(-ret));
		return 1;
	}
#endif
	store_set_fd_cache((unsigned)o.fd_cache);
	if ((ret = load_store()) != GO_ON || (ret = start_services(&o)) != GO_ON)
		return ret;
	run_event_loop(o.foreground);
}
