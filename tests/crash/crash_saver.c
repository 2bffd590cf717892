/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash_saver.c — the process the crash-consistency tests kill.  It saves one of two known
 * checkpoints, A or B, to one target through the public API (pdckpt_save_file), over and over
 * ("loop": A, B, A, ...; "loopB": B, A, B, ...) or once ("A" / "B").  After each save returns it
 * reports "saved X" with a raw write(2) on stdout, so the driver knows which saves completed and
 * the LD_PRELOAD shim (unsynced_drop.c) sees the report as one more call at which a crash can
 * happen. usage: pdckpt_crash_saver KIND TARGET loop|loopB|A|B [--no-durable] [--checksum] KIND:
 * tensor (one tensor stream), combined, varsdir (one file per variable), pdparams (pickle)
 */
#include <pdckpt.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A and B differ in tensor count, names and sizes, so any mix of the two is visible. */
static pdckpt_value *make_tensor(uint32_t seed, int64_t n) {
    pdckpt_value *t = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, &n, &t, &err) != PDCKPT_OK) return NULL;
    uint32_t *data = pdckpt_tensor_data_mut(t);
    uint32_t  x = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = x & 0x3f7fffffu; /* finite floats */
    }
    return t;
}

static pdckpt_value *make_checkpoint(const char *kind, char which) {
    bool a = which == 'A';
    if (strcmp(kind, "tensor") == 0) return make_tensor(a ? 1 : 2, a ? 12000 : 9000);
    pdckpt_value *dict = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int           count = a ? 4 : 3;
    for (int i = 0; dict && i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s_w%d", a ? "a" : "b", i);
        pdckpt_value *t = make_tensor((uint32_t)(a ? 10 + i : 20 + i), a ? 3000 : 5000 + i);
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        if (!t || pdckpt_dict_set(dict, name, t, &err) != PDCKPT_OK) {
            pdckpt_value_free(dict);
            return NULL;
        }
    }
    return dict;
}

static pdckpt_format kind_format(const char *kind) {
    if (strcmp(kind, "tensor") == 0) return PDCKPT_FORMAT_TENSOR;
    if (strcmp(kind, "combined") == 0) return PDCKPT_FORMAT_COMBINED;
    if (strcmp(kind, "varsdir") == 0) return PDCKPT_FORMAT_VARS_DIR;
    if (strcmp(kind, "pdparams") == 0) return PDCKPT_FORMAT_PICKLE;
    return PDCKPT_FORMAT_AUTO;
}

static int save_one(const pdckpt_value *root, const char *target, const pdckpt_save_options *so,
                    char which) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_save_file(root, target, so, &err) != PDCKPT_OK) {
        fprintf(stderr, "save %c failed: %s: %s\n", which, err.source, err.message);
        return 1;
    }
    char line[] = "saved X\n";
    line[6] = which;
    return write(STDOUT_FILENO, line, sizeof line - 1) == (ssize_t)(sizeof line - 1) ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 4 || kind_format(argv[1]) == PDCKPT_FORMAT_AUTO) {
        fprintf(stderr,
                "usage: %s tensor|combined|varsdir|pdparams TARGET loop|loopB|A|B "
                "[--no-durable] [--checksum]\n",
                argv[0]);
        return 2;
    }
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = kind_format(argv[1]);
    for (int i = 4; i < argc; i++)
        if (strcmp(argv[i], "--no-durable") == 0)
            so.durable = false;
        else if (strcmp(argv[i], "--checksum") == 0)
            so.checksum = true;
    pdckpt_value *ckpt[2] = {make_checkpoint(argv[1], 'A'), make_checkpoint(argv[1], 'B')};
    int           rc = ckpt[0] && ckpt[1] ? 0 : 1;
    if (rc == 0 && strncmp(argv[3], "loop", 4) == 0) {
        long first = strcmp(argv[3], "loopB") == 0; /* which one the loop starts with */
        for (long i = first; rc == 0 && i < first + 1000000; i++)
            rc = save_one(ckpt[i & 1], argv[2], &so, (i & 1) ? 'B' : 'A');
    } else if (rc == 0) {
        char which = argv[3][0] == 'B' ? 'B' : 'A';
        rc = save_one(ckpt[which == 'B'], argv[2], &so, which);
    }
    pdckpt_value_free(ckpt[0]);
    pdckpt_value_free(ckpt[1]);
    return rc;
}
