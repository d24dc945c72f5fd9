/* A close that races with calls (issue 25 item 2): 16 threads call exec on
 * one client while a 17th closes it.  Every call ends OK (sent before the
 * close, answered) or MLK_ECLOSED / MLK_ECANCELED (it lost the race);
 * none ends MLK_EDEAD as if the server had crashed, and nothing is written
 * after the close line.  Against a scripted peer that answers close and
 * exits at once (as upstream does once in-flight work ends), and against
 * matchlock-local. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2e_server.h"
#include "matchlock.h"

#define THREADS 16

struct race {
    mlk_client *c;
    _Atomic int started, ok, closed, bad;
    char bad_msg[512];
    pthread_mutex_t mu;
};

static void *caller(void *p)
{
    struct race *x = p;
    x->started++;
    for (;;) {
        mlk_result *r = NULL;
        int rc = mlk_exec(x->c, "true", NULL, &r);
        if (rc == 0) {
            x->ok++;
        } else if (rc == MLK_ECLOSED || rc == MLK_ECANCELED) {
            x->closed++;
        } else {
            pthread_mutex_lock(&x->mu);
            if (!x->bad++)
                snprintf(x->bad_msg, sizeof x->bad_msg, "%s: %s", mlk_errname(rc), mlk_result_message(r));
            pthread_mutex_unlock(&x->mu);
        }
        mlk_result_free(r);
        if (rc != 0) return NULL;
    }
}

/* One round: the callers run until each has had a few answers, then close. */
static void round_on(mlk_client *c, int round, int *lost)
{
    struct race x = {.c = c};
    pthread_mutex_init(&x.mu, NULL);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) cr_assert_eq(pthread_create(&th[i], NULL, caller, &x), 0);
    for (int w = 0; w < 2000 && (x.started < THREADS || x.ok < THREADS * 2); w++) usleep(1000);
    mlk_result *r = NULL;
    int rc = mlk_close(c, 5, &r);
    cr_assert_eq(rc, 0, "round %d: close: %s", round, mlk_result_message(r));
    mlk_result_free(r);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    cr_assert_eq(x.bad, 0, "round %d: %d of the racing calls failed otherwise than closed, e.g. %s", round, x.bad,
                 x.bad_msg);
    cr_assert_eq(x.closed, THREADS, "round %d: %d callers saw the close", round, x.closed);
    *lost += x.closed;
    pthread_mutex_destroy(&x.mu);
}

/* Answers exec at once; answers close, then copies whatever it still reads
 * into $LOG for 0.2 s (there must be nothing) and exits, as upstream's
 * server exits once close is done. */
#define PEER                                                                                                   \
    "while IFS= read -r line; do "                                                                             \
    "  id=${line#*\\\"id\\\":}; id=${id%%,*}; "                                                                   \
    "  case \"$line\" in "                                                                                     \
    "  *'\"method\":\"close\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\"; "       \
    "     exec timeout 0.2 cat >> \"$LOG\";; "                                                                  \
    "  *'\"method\":\"exec\"'*) printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"exit_code\":0,"      \
    "\"stdout\":\"\",\"stderr\":\"\",\"duration_ms\":0}}\\n' \"$id\";; "                                       \
    "  esac; done"

Test(close_race, scripted_peer_many_rounds, .timeout = 120)
{
    int lost = 0;
    for (int round = 0; round < 25; round++) {
        char logfile[] = "/tmp/mlk-race-XXXXXX";
        int lfd = mkstemp(logfile);
        cr_assert_geq(lfd, 0);
        close(lfd);
        mlk_config *cfg = mlk_config_new();
        const char *launcher[] = {"sh", "-c", PEER, "peer"};
        cr_assert_eq(mlk_config_set_launcher(cfg, launcher, 4), 0);
        cr_assert_eq(mlk_config_set_env(cfg, "LOG", logfile), 0);
        mlk_client *c = NULL;
        mlk_result *res = NULL;
        cr_assert_eq(mlk_client_new(&c, cfg, &res), 0, "%s", mlk_result_message(res));
        mlk_result_free(res);
        mlk_config_free(cfg);
        round_on(c, round, &lost);
        mlk_client_free(c);
        FILE *f = fopen(logfile, "r");
        char line[256] = "";
        int after = f && fgets(line, sizeof line, f) != NULL;
        if (f) fclose(f);
        unlink(logfile);
        cr_assert_not(after, "round %d: written after the close line: %s", round, line);
    }
    cr_log_info("close_race/scripted_peer: %d calls lost the race over 25 rounds", lost);
}

Test(close_race, matchlock_local_many_rounds, .timeout = 240)
{
    int lost = 0;
    for (int round = 0; round < 8; round++) {
        mlk_client *c = e2e_client_from(e2e_config());
        e2e_create(c, 30000, "close race");
        round_on(c, round, &lost);
        mlk_client_free(c);
    }
    cr_log_info("close_race/matchlock_local: %d calls lost the race over 8 rounds", lost);
}
