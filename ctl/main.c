/*
 * main.c - the corralctl command line.
 *
 * Owns argv: global options, the command, the command's options (one
 * getopt table for all, then a check of which options the command takes),
 * --help texts, and the exit status: 0 ok, 1 failed, 2 usage error.
 * The instance name comes from -n/--name (before or after the command),
 * else $CORRAL_NAME, else "default".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/common.h"
#include "conf/conf.h"
#include "ctl.h"

#define CR_CTL_VERSION  "0.1.0"

/* Options a command accepts (bits of struct command.opts). */
enum {
    O_JSON      = 1u << 0,
    O_INTERVAL  = 1u << 1,
    O_COUNT     = 1u << 2,
    O_TIMEOUT   = 1u << 3,
    O_CONF      = 1u << 4,
    O_DESCRIBE  = 1u << 5,
    O_FAST      = 1u << 6,
    O_NAME      = 1u << 7
};

struct command {
    const char          *name;
    unsigned             opts;
    const char          *synopsis;
    const char          *help;
};

static const struct command commands[] = {
    { "status", O_NAME | O_JSON | O_INTERVAL, "status [--json] [--interval SECS]",
      "A summary of the instance (master pid, uptime, generation, workers,\n"
      "req/s, totals) and a table of its worker processes. Rates come from two\n"
      "snapshots --interval seconds apart (default 0.5; 0 gives lifetime\n"
      "averages). Rows marked * belong to an older generation.\n" },
    { "workers", O_NAME | O_JSON | O_INTERVAL, "workers [--json] [--interval SECS]",
      "The table of worker processes: slot, id, pid, generation, state, uptime,\n"
      "active connections, req/s, requests, 2xx/4xx/5xx, p50/p99 latency (ms),\n"
      "bytes in/out. Rows marked * belong to an older generation.\n" },
    { "routes", O_NAME | O_JSON | O_INTERVAL, "routes [--json] [--interval SECS]",
      "One row per route: name, upstream, req/s, requests, active, 2xx/4xx/5xx,\n"
      "p50/p99 latency (ms), bytes in/out, summed over every worker. Routes\n"
      "marked * are not in the configuration now serving.\n" },
    { "upstreams", O_NAME | O_JSON | O_INTERVAL, "upstreams [--json] [--interval SECS]",
      "One row per upstream server: upstream, address, weight, health (active\n"
      "checks), time left of an ejection (passive), req/s, requests, active,\n"
      "failures, timeouts, p50/p99 time to first byte (ms).\n"
      "Servers marked * are not in the configuration now serving.\n" },
    { "top", O_NAME | O_INTERVAL | O_COUNT, "top [--interval SECS] [--count N]",
      "A live view refreshed every --interval seconds (default 1): totals with\n"
      "per-second rates, workers sorted by req/s, routes. 'q' or Ctrl-C quits.\n"
      "When stdout is not a terminal, prints one block per refresh; --count N\n"
      "stops after N refreshes (0, the default, runs until interrupted).\n" },
    { "metrics", O_NAME, "metrics",
      "Every counter in the Prometheus text exposition format (0.0.4), as the\n"
      "admin endpoint's GET /metrics serves it.\n" },
    { "stats", O_NAME | O_DESCRIBE, "stats [--describe]",
      "Every worker counter summed over all workers (exited ones included),\n"
      "one \"name value\" per line. --describe lists every counter with its\n"
      "help text instead, without reading any instance.\n" },
    { "describe", 0, "describe",
      "The same as stats --describe.\n" },
    { "reload", O_NAME | O_TIMEOUT, "reload [--timeout SECS]",
      "Send SIGHUP to the instance's master and wait (default 10 s) for the\n"
      "outcome: \"reload: generation N serving\" (exit 0) or \"reload failed:\n"
      "ERROR\" (exit 1).\n" },
    { "stop", O_NAME | O_TIMEOUT | O_FAST, "stop [--fast] [--timeout SECS]",
      "Send SIGTERM (graceful stop; --fast: SIGQUIT) to the master and wait\n"
      "(default 10 s) for it to exit.\n" },
    { "reopen", O_NAME, "reopen",
      "Send SIGUSR1 to the master: it creates the access log file again (after\n"
      "a rotation renamed it) and every worker reopens it.\n" },
    { "check", O_CONF, "check -c FILE",
      "Load and check a configuration file: prints \"FILE: ok\" (exit 0) or\n"
      "every error as file:line:column: message (exit 1).\n" },
    { "help", 0, "help [COMMAND]",
      "This text, or a command's.\n" },
};

static void
usage(FILE *out)
{
    size_t i;

    fprintf(out,
            "usage: corralctl [-n NAME] COMMAND [OPTIONS]\n"
            "\n"
            "Reads a running corral instance's shared-memory statistics\n"
            "(/dev/shm/corral.NAME) and sends it commands.\n"
            "\n"
            "commands:\n");
    for (i = 0; i < CR_NELEM(commands); i++) {
        fprintf(out, "  %s\n", commands[i].synopsis);
    }
    fprintf(out,
            "\n"
            "options:\n"
            "  -n, --name NAME   instance (default: $CORRAL_NAME, else \"default\")\n"
            "  -h, --help        help; after a command, that command's help\n"
            "  -V, --version     print the version\n"
            "\n"
            "exit status: 0 ok, 1 failure, 2 usage error\n");
}

static void
command_help(FILE *out, const struct command *c)
{
    fprintf(out, "usage: corralctl [-n NAME] %s\n\n%s", c->synopsis, c->help);
    if (c->opts & O_JSON) {
        fprintf(out, "\n--json prints a JSON document instead; its keys are listed in\n"
                "corralctl's README (ctl/README.md) and in shm/report.h.\n");
    }
}

static const struct command *
find_command(const char *name)
{
    size_t i;

    for (i = 0; i < CR_NELEM(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

static int
parse_seconds(const char *s, double max, double *out)
{
    char *end;
    double v;

    v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0) || v > max) {
        return CR_ERR;
    }
    *out = v;
    return CR_OK;
}

static int
bad_usage(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "corralctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    if (cmd != NULL) {
        fprintf(stderr, "try \"corralctl %s --help\"\n", cmd);
    } else {
        fprintf(stderr, "try \"corralctl --help\"\n");
    }
    return CR_CTL_EXIT_USAGE;
}

static int
valid_name(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n >= CR_SHM_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
              || ch == '.' || ch == '_' || ch == '-'))
        {
            return 0;
        }
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int
main(int argc, char **argv)
{
    enum { L_JSON = 256, L_COUNT, L_DESCRIBE, L_FAST };
    static const struct option globals[] = {
        { "name",    required_argument, NULL, 'n' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL,      0,                 NULL, 0   },
    };
    static const struct option cmdopts[] = {
        { "name",     required_argument, NULL, 'n'        },
        { "help",     no_argument,       NULL, 'h'        },
        { "json",     no_argument,       NULL, L_JSON     },
        { "interval", required_argument, NULL, 'i'        },
        { "count",    required_argument, NULL, L_COUNT    },
        { "timeout",  required_argument, NULL, 't'        },
        { "config",   required_argument, NULL, 'c'        },
        { "describe", no_argument,       NULL, L_DESCRIBE },
        { "fast",     no_argument,       NULL, L_FAST     },
        { NULL,       0,                 NULL, 0          },
    };
    struct cr_ctl_opts o;
    const struct command *cmd;
    const char *env;
    char *end;
    int opt;
    unsigned need;

    memset(&o, 0, sizeof(o));
    o.interval = -1;
    o.timeout = -1;
    env = getenv("CORRAL_NAME");
    o.name = env != NULL && env[0] != '\0' ? env : CR_CONF_DEFAULT_NAME;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:n:hV", globals, NULL)) != -1) {
        switch (opt) {
        case 'n':
            o.name = optarg;
            break;
        case 'h':
            usage(stdout);
            return CR_CTL_EXIT_OK;
        case 'V':
            printf("corralctl " CR_CTL_VERSION "\n");
            return CR_CTL_EXIT_OK;
        case ':':
            return bad_usage(NULL, "option %s needs an argument", argv[optind - 1]);
        default:
            return bad_usage(NULL, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CR_CTL_EXIT_USAGE;
    }
    cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        return bad_usage(NULL, "unknown command \"%s\"", argv[optind]);
    }

    /* the command's own options, from the word after it */
    argc -= optind;
    argv += optind;
    optind = 0;             /* glibc: start a fresh scan */
    while ((opt = getopt_long(argc, argv, "+:n:hi:t:c:", cmdopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            command_help(stdout, cmd);
            return CR_CTL_EXIT_OK;
        case 'n':
            need = O_NAME;
            o.name = optarg;
            break;
        case L_JSON:
            need = O_JSON;
            o.json = 1;
            break;
        case 'i':
            need = O_INTERVAL;
            if (parse_seconds(optarg, 3600, &o.interval) != CR_OK) {
                return bad_usage(cmd->name, "--interval wants seconds (0 to 3600), got \"%s\"",
                                 optarg);
            }
            break;
        case L_COUNT:
            need = O_COUNT;
            o.count = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || o.count < 0) {
                return bad_usage(cmd->name, "--count wants a number of refreshes, got \"%s\"",
                                 optarg);
            }
            break;
        case 't':
            need = O_TIMEOUT;
            if (parse_seconds(optarg, 86400, &o.timeout) != CR_OK || o.timeout == 0) {
                return bad_usage(cmd->name, "--timeout wants seconds (more than 0), got \"%s\"",
                                 optarg);
            }
            break;
        case 'c':
            need = O_CONF;
            o.conf_path = optarg;
            break;
        case L_DESCRIBE:
            need = O_DESCRIBE;
            o.describe = 1;
            break;
        case L_FAST:
            need = O_FAST;
            o.fast = 1;
            break;
        case ':':
            return bad_usage(cmd->name, "option %s needs an argument", argv[optind - 1]);
        default:
            return bad_usage(cmd->name, "unknown option %s", argv[optind - 1]);
        }
        if (!(cmd->opts & need)) {
            return bad_usage(cmd->name, "this command takes no option %s", argv[optind - 1]);
        }
    }

    /* positional arguments: only "check FILE" and "help COMMAND" take one */
    if (optind < argc) {
        if (strcmp(cmd->name, "check") == 0 && o.conf_path == NULL && optind + 1 == argc) {
            o.conf_path = argv[optind];
        } else if (strcmp(cmd->name, "help") == 0 && optind + 1 == argc) {
            const struct command *c = find_command(argv[optind]);

            if (c == NULL) {
                return bad_usage(NULL, "unknown command \"%s\"", argv[optind]);
            }
            command_help(stdout, c);
            return CR_CTL_EXIT_OK;
        } else {
            return bad_usage(cmd->name, "unexpected argument \"%s\"", argv[optind]);
        }
    }
    if ((cmd->opts & O_NAME) && !valid_name(o.name)) {
        return bad_usage(cmd->name, "bad instance name \"%s\" (letters, digits, '.', '_', "
                         "'-'; at most 63)", o.name);
    }

    if (strcmp(cmd->name, "status") == 0) {
        return cr_ctl_show(&o, CR_CTL_STATUS);
    } else if (strcmp(cmd->name, "workers") == 0) {
        return cr_ctl_show(&o, CR_CTL_WORKERS);
    } else if (strcmp(cmd->name, "routes") == 0) {
        return cr_ctl_show(&o, CR_CTL_ROUTES);
    } else if (strcmp(cmd->name, "upstreams") == 0) {
        return cr_ctl_show(&o, CR_CTL_UPSTREAMS);
    } else if (strcmp(cmd->name, "top") == 0) {
        return cr_ctl_top(&o);
    } else if (strcmp(cmd->name, "metrics") == 0) {
        return cr_ctl_metrics(&o);
    } else if (strcmp(cmd->name, "stats") == 0) {
        return cr_ctl_stats(&o);
    } else if (strcmp(cmd->name, "describe") == 0) {
        return cr_ctl_describe();
    } else if (strcmp(cmd->name, "reload") == 0) {
        return cr_ctl_reload(&o);
    } else if (strcmp(cmd->name, "stop") == 0) {
        return cr_ctl_stop(&o);
    } else if (strcmp(cmd->name, "reopen") == 0) {
        return cr_ctl_reopen(&o);
    } else if (strcmp(cmd->name, "check") == 0) {
        if (o.conf_path == NULL) {
            return bad_usage(cmd->name, "%s", "check needs a file: check -c FILE");
        }
        return cr_ctl_check(&o);
    }
    usage(stdout);          /* help */
    return CR_CTL_EXIT_OK;
}
