/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_opwalk.h — the one walk over a pickle file's opcodes that reads only the opcodes: the
 * file is read with pread through a window, each argument is skipped by its kind in the opcode
 * table (pickle_opcodes.h), and every BINBYTES / BINBYTES8 / BYTEARRAY8 of at least a given
 * size is reported to a callback and jumped over unread.  Nothing is interpreted; the callers
 * decide what a walk that cannot follow the stream means (pickle_place.c gives up,
 * pickle_skim.c reports the file and offset).
 */
#ifndef PDK_PICKLE_OPWALK_H
#define PDK_PICKLE_OPWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes of the file held: either a buffer of `cap` bytes holding [start, start + len), or a
 * whole-file image (the file's byte x at image[x]) that the window fills as the walk goes. */
typedef struct pk_win {
    int      fd;
    uint64_t size;        /* the file's */
    uint64_t start;       /* the file offset of the first byte held */
    size_t   len;         /* bytes held from start */
    uint8_t *buf, *image; /* one of them */
    size_t   cap;         /* buf's size: nothing longer than it is held at once */
    uint64_t next, max;   /* the next read's size, doubling up to max; back down after a jump */
    uint64_t min;
    int      err; /* errno of a failed pread; 0 when the file ended early */
} pk_win;

/* A window over a buffer of `cap` bytes, each read filling it. */
void pk_win_buffer(pk_win *w, int fd, uint64_t size, uint8_t *buf, size_t cap);
/* A window filling `image` (size bytes), reads from `min` bytes doubling to `max`. */
void pk_win_image(pk_win *w, int fd, uint64_t size, uint8_t *image, uint64_t min, uint64_t max);
/* Bytes [pos, pos + k) of the file; NULL past its end, beyond the buffer or on a read error. */
const uint8_t *pk_win_at(pk_win *w, uint64_t pos, uint64_t k);

typedef enum pk_walk_status {
    PK_WALK_STOP,    /* followed to a STOP */
    PK_WALK_END,     /* `what` runs past the file's end */
    PK_WALK_OPCODE,  /* a byte that is not an opcode */
    PK_WALK_LONG,    /* a line longer than the buffer */
    PK_WALK_IO,      /* a pread failed (w->err) or the file is shorter than its size */
    PK_WALK_BUDGET,  /* the opcode bytes passed the budget */
    PK_WALK_CALLBACK /* the payload callback returned false */
} pk_walk_status;

typedef struct pk_walk {
    pk_walk_status status;
    uint64_t       at;     /* the opcode that could not be followed, or the STOP */
    uint8_t        op;     /* its byte */
    const char    *what;   /* END: what was expected ("an opcode", "a line ending", its name) */
    uint64_t       count;  /* END of a counted argument's bytes: their count, else 0 */
    uint64_t       walked; /* bytes walked, payloads reported excluded */
} pk_walk;

/* Called for each large payload: the opcode's offset, the payload's, its length. */
typedef bool (*pk_payload_fn)(void *ctx, uint64_t op_at, uint64_t at, uint64_t len);

/* Walks the opcodes from `pos` to a STOP, reporting payloads of at least `min_payload` bytes. */
pk_walk pk_opwalk(pk_win *w, uint64_t pos, uint64_t min_payload, uint64_t budget, pk_payload_fn fn,
                  void *ctx);

#endif /* PDK_PICKLE_OPWALK_H */
