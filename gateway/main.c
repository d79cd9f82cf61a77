/*
 * main.c - the corral command line.
 *
 * Owns argv handling and the `-t` config check. Loads the config once and
 * hands it to cr_master_run(), which owns it from then on. Exit status:
 * 0 ok, 1 bad config or failed run, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"
#include "log.h"
#include "master.h"

#define CR_VERSION          "0.1.0"
#define CR_DEFAULT_CONF     "/etc/corral/corral.yaml"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: corral [-t] [-c FILE] [-l LEVEL]\n"
            "\n"
            "  -c FILE      configuration file (default " CR_DEFAULT_CONF ")\n"
            "  -t           check the configuration and exit\n"
            "  -l LEVEL     log level: error, warn, notice (default), info, debug\n"
            "  -v, --version  print the version and exit\n"
            "  -h, --help     print this help and exit\n"
            "\n"
            "signals to the master: HUP reload, TERM/INT graceful stop,\n"
            "QUIT fast stop, USR1 reopen logs\n");
}

static void
print_errs(const struct cr_conf_errs *errs, const char *path)
{
    size_t i;

    for (i = 0; i < errs->n; i++) {
        fprintf(stderr, "%s\n", errs->msgs[i]);
    }
    if (errs->n == 0) {
        fprintf(stderr, "%s: cannot load the configuration\n", path);
    }
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "version", no_argument, NULL, 'v' },
        { "help",    no_argument, NULL, 'h' },
        { NULL,      0,           NULL, 0   },
    };
    struct cr_conf_errs errs = { NULL, 0 };
    const char *path = CR_DEFAULT_CONF;
    struct cr_conf *conf;
    int opt, check = 0, level;

    cr_log_init();
    cr_log_set_role("master");

    while ((opt = getopt_long(argc, argv, "c:tl:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'l':
            level = cr_log_level_parse(optarg);
            if (level == -1) {
                fprintf(stderr, "corral: unknown log level \"%s\" "
                        "(error, warn, notice, info, debug)\n", optarg);
                return 2;
            }
            cr_log_set_level((enum cr_log_level)level);
            break;
        case 'v':
            printf("corral " CR_VERSION "\n");
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "corral: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    conf = cr_conf_load(path, &errs);
    if (conf == NULL) {
        print_errs(&errs, path);
        cr_conf_errs_free(&errs);
        return 1;
    }
    cr_conf_errs_free(&errs);

    if (check) {
        printf("%s: ok\n", path);
        cr_conf_free(conf);
        return 0;
    }

    return cr_master_run(path, conf);
}
