/* collie.c: entry point of the admin CLI: finds the command in the table, parses its options
 * (each subcommand lists its own; talking-to-sheep commands add -a, -p and -r), runs it. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "collie.h"
#include "sheepdog_proto.h"

const char *sd_addr = "127.0.0.1";
int sd_port = SD_LISTEN_PORT;
bool raw_output;

/* image commands live in their own file; collie works without them */
extern const struct command image_command __attribute__((weak));

/* a weak image_command that is not linked in is NULL and simply ends the table early */
static const struct command *commands[] = { &cluster_command, &node_command, &vdi_command, &image_command, NULL };

static char *opt_values[512];
static bool opt_present[512];

const char *opt(int key)
{
	if (key < 0 || key >= 512 || !opt_present[key])
		return NULL;
	return opt_values[key] ? opt_values[key] : "";
}

bool opt_set(int key) { return key >= 0 && key < 512 && opt_present[key]; }

void die_msg(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "collie: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct collie_option cluster_opts[] = {
	{ 'a', "address", 1, "ADDR", "sheep to talk to (default 127.0.0.1)" },
	{ 'p', "port", 1, "PORT", "its port (default 7000)" },
	{ 'r', "raw", 0, NULL, "raw output: space-separated fields, no headers, sizes in bytes" },
	{ OPT_KEY_FILE, "key-file", 1, "FILE", "the cluster key (default $" SD_KEY_FILE_ENV ")" },
	{ 0 },
};

static const struct collie_option help_opt[] = {
	{ 'h', "help", 0, NULL, "show this help" },
	{ 0 },
};

static void print_options(FILE *fp, const struct collie_option *o)
{
	for (; o && o->key; o++) {
		char left[64];
		char shortpart[8] = "";
		if (o->key < 256)
			snprintf(shortpart, sizeof(shortpart), "-%c", o->key);
		snprintf(left, sizeof(left), "%s%s%s%s%s%s", shortpart, o->key < 256 && o->long_name ? ", " : "",
			 o->long_name ? "--" : "", o->long_name ? o->long_name : "", o->arg_name ? " " : "",
			 o->arg_name ? o->arg_name : "");
		fprintf(fp, "  %-28s %s\n", left, o->help);
	}
}

static void subcommand_usage(FILE *fp, const struct command *c, const struct subcommand *s)
{
	fprintf(fp, "Usage: collie %s %s %s\n%s\n", c->name, s->name, s->synopsis ? s->synopsis : "", s->help);
	if ((s->options && s->options->key) || (s->flags & CMD_CLUSTER))
		fprintf(fp, "Options:\n");
	print_options(fp, s->options);
	if (s->flags & CMD_CLUSTER)
		print_options(fp, cluster_opts);
	print_options(fp, help_opt);
}

static void command_usage(FILE *fp, const struct command *c)
{
	fprintf(fp, "Usage: collie %s COMMAND [ARGS] [OPTIONS]\n%s\n\nCommands:\n", c->name, c->help);
	for (const struct subcommand *s = c->subs; s->name; s++)
		fprintf(fp, "  %-10s %-40s %s\n", s->name, s->synopsis ? s->synopsis : "", s->help);
	fprintf(fp, "\nRun 'collie %s COMMAND --help' for a command's options.\n", c->name);
}

static void main_usage(FILE *fp)
{
	fprintf(fp, "Usage: collie COMMAND SUBCOMMAND [ARGS] [OPTIONS]\n"
		    "Administer a Sheepfold cluster and work with disk images.\n\nCommands:\n");
	for (int i = 0; commands[i]; i++) {
		const struct command *c = commands[i];
		for (const struct subcommand *s = c->subs; s->name; s++)
			fprintf(fp, "  %s %-10s %s\n", c->name, s->name, s->help);
	}
	fprintf(fp, "\nRun 'collie COMMAND --help' or 'collie COMMAND SUBCOMMAND --help' for more.\n");
}

static int add_options(struct option *lo, int n, char *shortopts, const struct collie_option *o)
{
	for (; o && o->key; o++) {
		if (o->key < 256) {
			char s[3] = { (char)o->key, o->has_arg ? ':' : 0, 0 };
			strcat(shortopts, s);
		}
		if (o->long_name) {
			lo[n].name = o->long_name;
			lo[n].has_arg = o->has_arg ? required_argument : no_argument;
			lo[n].flag = NULL;
			lo[n].val = o->key;
			n++;
		}
	}
	return n;
}

/* every connection to a sheep proves the key from now on */
static int use_key_file(const char *path)
{
	struct sd_auth_key key;
	char err[512];
	if (!path)
		return 0;
	if (auth_load_key_file(path, &key, err, sizeof(err)) < 0) {
		die_msg("%s", err);
		return -1;
	}
	auth_client_use_key(&key, SD_AUTH_ROLE_ADMIN);
	return 0;
}

static int run_subcommand(const struct command *c, const struct subcommand *s, int argc, char **argv)
{
	struct option lo[128];
	char shortopts[256] = "+";
	int n = 0;
	memset(lo, 0, sizeof(lo));
	n = add_options(lo, n, shortopts, s->options);
	if (s->flags & CMD_CLUSTER)
		n = add_options(lo, n, shortopts, cluster_opts);
	n = add_options(lo, n, shortopts, help_opt);
	shortopts[0] = '-';   /* options may follow positional arguments */

	char **pos = calloc(argc + 1, sizeof(char *));
	int nr_pos = 0, ch;
	if (!pos)
		return 1;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		if (ch == 1) {
			pos[nr_pos++] = optarg;
			continue;
		}
		if (ch == '?' || ch == ':') {
			if (optopt && optopt < 256 && optopt > 32)
				die_msg("%s %s: invalid option or missing argument: -%c", c->name, s->name, optopt);
			else
				die_msg("%s %s: invalid option or missing argument: %s", c->name, s->name, argv[optind - 1]);
			fprintf(stderr, "Try 'collie %s %s --help'.\n", c->name, s->name);
			free(pos);
			return 1;
		}
		if (ch == 'h') {
			subcommand_usage(stdout, c, s);
			free(pos);
			return 0;
		}
		if (ch < 0 || ch >= 512)
			continue;
		if (opt_present[ch] && opt_values[ch] && optarg) {
			/* a repeated option accumulates its arguments */
			size_t l = strlen(opt_values[ch]) + strlen(optarg) + 2;
			char *joined = malloc(l);
			if (joined) {
				snprintf(joined, l, "%s,%s", opt_values[ch], optarg);
				free(opt_values[ch]);
				opt_values[ch] = joined;
			}
		} else {
			opt_values[ch] = optarg ? strdup(optarg) : NULL;
		}
		opt_present[ch] = true;
	}
	for (; optind < argc; optind++)
		pos[nr_pos++] = argv[optind];

	if (s->flags & CMD_CLUSTER) {
		if (opt('a'))
			sd_addr = opt('a');
		if (opt('p')) {
			char *end;
			long p = strtol(opt('p'), &end, 10);
			if (*end || p < 1 || p > 65535) {
				die_msg("invalid port '%s'", opt('p'));
				free(pos);
				return 1;
			}
			sd_port = p;
		}
		raw_output = opt_set('r');
		if (!*sd_addr || strlen(sd_addr) > 255) {
			die_msg("invalid address '%s'", sd_addr);
			free(pos);
			return 1;
		}
		if (use_key_file(auth_key_file_choice(opt(OPT_KEY_FILE))) < 0) {
			free(pos);
			return 1;
		}
	}
	if (nr_pos < s->min_args || (s->max_args >= 0 && nr_pos > s->max_args)) {
		die_msg("%s %s: wrong number of arguments", c->name, s->name);
		fprintf(stderr, "Usage: collie %s %s %s\n", c->name, s->name, s->synopsis ? s->synopsis : "");
		free(pos);
		return 1;
	}
	int ret = s->fn(nr_pos, pos);
	free(pos);
	for (int i = 0; i < 512; i++)
		free(opt_values[i]);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc >= 3 && !strcmp(argv[1], "help"))
			for (int i = 0; commands[i]; i++)
				if (!strcmp(commands[i]->name, argv[2])) {
					command_usage(stdout, commands[i]);
					return 0;
				}
		main_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v")) {
		printf("collie (Sheepfold) 0.1\n");
		return 0;
	}
	const struct command *c = NULL;
	for (int i = 0; commands[i]; i++)
		if (!strcmp(commands[i]->name, argv[1]))
			c = commands[i];
	if (!c) {
		die_msg("unknown command '%s'", argv[1]);
		main_usage(stderr);
		return 1;
	}
	if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h") || !strcmp(argv[2], "help")) {
		command_usage(argc < 3 ? stderr : stdout, c);
		return argc < 3 ? 1 : 0;
	}
	for (const struct subcommand *s = c->subs; s->name; s++)
		if (!strcmp(s->name, argv[2]))
			return run_subcommand(c, s, argc - 2, argv + 2);
	die_msg("unknown %s command '%s'", c->name, argv[2]);
	command_usage(stderr, c);
	return 1;
}
