/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_alive.c — a dead rank fails the others in about a second instead of at timeout_s
 * (issue 20).  What Open MPI 4.1 (no ULFM) allows: under a plain `mpirun` a rank that dies makes
 * the launcher abort the whole job at once, so nobody waits; but where the job keeps running
 * (`mpirun --enable-recovery`, launchers told not to kill) an operation with a dead peer neither
 * completes nor returns an error — it hangs.  So the ranks find out themselves: every rank's
 * (host, pid, process start time) is exchanged once per communicator (cached on it as an MPI
 * attribute, so later calls still know a rank that dies before them); a rank that has waited
 * LIVENESS_S checks the ranks on its own host (/proc/<pid>/stat: gone, a zombie, or a new
 * process under that pid = dead) and, on finding one dead, tells every other rank of the call
 * with a small message that their waits look for.  A rank whose host has no survivor left is
 * not seen this way: the others then give up at timeout_s as before.
 */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAG_DEAD 0x7ff8

typedef struct pdk_peer {
    uint64_t host; /* hostname, boot and pid namespace: pids compare only on one host */
    int64_t  pid;
    uint64_t start; /* clock ticks after boot: tells a reused pid apart */
} pdk_peer;

static int keyval = MPI_KEYVAL_INVALID;

static int drop_peers(MPI_Comm comm, int key, void *value, void *extra) {
    (void)comm, (void)key, (void)extra;
    free(value);
    return MPI_SUCCESS;
}

/* Field 3 (state) and 22 (start time) of /proc/<pid>/stat; false when there is none. */
static bool proc_stat(int64_t pid, char *state, uint64_t *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE  *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || sscanf(p + 2, "%c", state) != 1) return false;
    for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
    return p && sscanf(p + 1, "%llu", (unsigned long long *)start) == 1;
}

static uint64_t host_id(void) {
    char     name[256] = "", boot[64] = "", ns[64] = "";
    FILE    *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    ssize_t  n;
    uint64_t h;
    if (f && !fgets(boot, sizeof boot, f)) boot[0] = '\0';
    if (f) fclose(f);
    gethostname(name, sizeof name - 1);
    n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    h = pdk_hash_bytes(0, name, strlen(name));
    h = pdk_hash_bytes(h, boot, strlen(boot));
    return pdk_hash_bytes(h, ns, strlen(ns));
}

void pdk_alive_cached(pdk_dist *d, MPI_Comm user) {
    int   found = 0;
    void *cached = NULL;
    if (keyval == MPI_KEYVAL_INVALID)
        MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, drop_peers, &keyval, NULL);
    MPI_Comm_get_attr(user, keyval, &cached, &found);
    d->peers = found ? cached : NULL;
}

pdckpt_status pdk_alive_init(pdk_dist *d, MPI_Comm user, pdckpt_error *err) {
    if (d->peers) return PDCKPT_OK;
    pdk_peer  mine = {host_id(), (int64_t)getpid(), 0};
    char      state;
    pdk_peer *all = calloc((size_t)d->size, sizeof *all);
    if (!all) return pdk_fail_nomem(err, "the ranks' process ids");
    if (!proc_stat(mine.pid, &state, &mine.start)) mine.pid = 0; /* no /proc: never checked */
    MPI_Request req;
    int         rc =
        MPI_Iallgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, d->comm, &req);
    pdckpt_status st = rc == MPI_SUCCESS ? pdk_dist_wait(d, 1, &req, "the ranks' process ids", err)
                                         : pdk_dist_mpi_fail(err, rc, "sharing process ids");
    if (st != PDCKPT_OK) {
        if (!d->broken) free(all); /* else MPI may still write into it */
        return st;
    }
    MPI_Comm_set_attr(user, keyval, all);
    d->peers = all;
    return PDCKPT_OK;
}

static int find_dead(const pdk_dist *d) {
    const pdk_peer *me = &d->peers[d->rank];
    for (int r = 0; me->pid > 0 && r < d->size; r++) { /* without /proc here, nothing is known */
        const pdk_peer *p = &d->peers[r];
        char            state = '?';
        uint64_t        start = 0;
        if (r == d->rank || p->host != me->host || p->pid <= 0) continue;
        if (!proc_stat(p->pid, &state, &start) || state == 'Z' || state == 'X' || start != p->start)
            return r;
    }
    return -1;
}

/* Every other rank of the call learns of the death (the message is never waited for). */
static void spread(pdk_dist *d, int dead) {
    static int told[2];
    told[0] = dead;
    told[1] = d->rank;
    for (int r = 0; r < d->size; r++) {
        MPI_Request req;
        if (r == d->rank || r == dead) continue;
        if (MPI_Isend(told, 2, MPI_INT, r, TAG_DEAD, d->comm, &req) == MPI_SUCCESS)
            MPI_Request_free(&req);
    }
}

pdckpt_status pdk_alive_check(pdk_dist *d, const char *what, pdckpt_error *err) {
    int flag = 0, got[2] = {-1, -1};
    if (!d->peers) return PDCKPT_OK;
    MPI_Status status;
    if (d->ready) MPI_Iprobe(MPI_ANY_SOURCE, TAG_DEAD, d->comm, &flag, &status);
    if (flag && MPI_Recv(got, 2, MPI_INT, status.MPI_SOURCE, TAG_DEAD, d->comm,
                         MPI_STATUS_IGNORE) == MPI_SUCCESS)
        return pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1,
                        "rank %d: rank %d found rank %d dead while this rank waited for "
                        "%s; giving up now instead of at the timeout",
                        d->rank, got[1], got[0], what);
    int dead = find_dead(d);
    if (dead < 0) return PDCKPT_OK;
    if (d->ready) spread(d, dead);
    return pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1,
                    "rank %d: rank %d (pid %lld on this host) has died while this rank "
                    "waited for %s; giving up now instead of at the timeout",
                    d->rank, dead, (long long)d->peers[dead].pid, what);
}
