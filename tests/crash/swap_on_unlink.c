/* SPDX-License-Identifier: Apache-2.0 */
/*
 * swap_on_unlink.c — LD_PRELOAD shim for tests/py/test_hostile_saves.py: at the first unlink,
 * unlinkat or rmdir of an entry named "trigger", renames $PDCKPT_SWAP_FROM aside and puts a
 * symbolic link to $PDCKPT_SWAP_LINK in its place -- what someone who may write a checkpoint
 * directory can do while a save sweeps a dead writer's temporary directory -- then lets the call
 * go on.  A walk by path follows the link from then on; one by descriptors does not.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fired;

static void maybe_swap(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *from = getenv("PDCKPT_SWAP_FROM"), *link = getenv("PDCKPT_SWAP_LINK");
    if (fired || !from || !link || strcmp(slash ? slash + 1 : path, "trigger") != 0) return;
    fired = 1;
    char aside[4096];
    snprintf(aside, sizeof aside, "%s.real", from);
    if (rename(from, aside) != 0 || symlink(link, from) != 0) abort();
}

int unlink(const char *path) {
    maybe_swap(path);
    int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    return real(path);
}

int unlinkat(int dfd, const char *path, int flags) {
    maybe_swap(path);
    int (*real)(int, const char *, int) =
        (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
    return real(dfd, path, flags);
}

int rmdir(const char *path) {
    maybe_swap(path);
    int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "rmdir");
    return real(path);
}
