/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_skim.h — a pickle file's skeleton without its large payloads (pickle_skim.c): the
 * opcode stream is read through a small window with pread, and every BINBYTES / BINBYTES8 /
 * BYTEARRAY8 of at least `min_payload` bytes is jumped over and left unread.  The result is an
 * image of the whole file in anonymous memory (the skipped payloads are zero pages that cost
 * nothing) which the ordinary pickle reader parses zero-copy: its tensors point into the image,
 * so each one's offset in the file is known, and a caller reads only the byte ranges it needs,
 * with pread (a file truncated meanwhile gives an error, not the SIGBUS a mapping would).
 */
#ifndef PDK_PICKLE_SKIM_H
#define PDK_PICKLE_SKIM_H

#include "../../core/pdk_core.h"

#include <sys/stat.h>

typedef struct pdk_skim_hole {
    uint64_t at, len; /* a payload left unread: [at, at + len) */
} pdk_skim_hole;

typedef struct pdk_skim {
    uint8_t       *image; /* st.st_size bytes; NULL when nothing is skimmed */
    size_t         len;
    int            fd; /* kept open for pdk_skim_read; -1 when closed */
    struct stat    st; /* the version skimmed */
    pdk_skim_hole *holes;
    size_t         n_holes, cap_holes;
    uint64_t       skipped; /* payload bytes left unread */
    const char    *name;    /* for errors; borrowed */
} pdk_skim;

/* Skims the pickle open at `fd` (taken: pdk_skim_free closes it) whose stat is `st`.  A hostile
 * file gets a FORMAT error naming `name` and the offset: an opcode that is not one, an argument
 * or payload running past the end, no STOP. */
pdckpt_status pdk_skim_open(int fd, const struct stat *st, const char *name, uint64_t min_payload,
                            pdk_skim *out, pdckpt_error *err);
/* The parts other formats' skims are made of (dist_skim_stream.c): the image of a file of
 * st->st_size bytes (anonymous zero pages, filled by pdk_skim_read into it) and a payload left
 * unread, added in file order. */
pdckpt_status pdk_skim_init(int fd, const struct stat *st, const char *name, pdk_skim *out,
                            pdckpt_error *err);
pdckpt_status pdk_skim_add_hole(pdk_skim *s, uint64_t at, uint64_t len, pdckpt_error *err);
/* A file whose layout is a header and then its data (safetensors): the first `prefix` bytes
 * are read, the rest is one payload left unread.  The format's own reader parses the image. */
pdckpt_status pdk_skim_open_prefix(int fd, const struct stat *st, const char *name, uint64_t prefix,
                                   pdk_skim *out, pdckpt_error *err);
void          pdk_skim_free(pdk_skim *s);

/* The file offset of the `n` bytes at `p` when they lie inside the image, else false. */
bool pdk_skim_offset(const pdk_skim *s, const void *p, uint64_t n, uint64_t *off);
/* Whether [off, off + n) touches a payload left unread (else the image holds those bytes). */
bool pdk_skim_holed(const pdk_skim *s, uint64_t off, uint64_t n);
/* Reads exactly n bytes at `off` of the file; a short read (the file was truncated after the
 * skim) is an IO error naming the file and the offset. */
pdckpt_status pdk_skim_read(const pdk_skim *s, void *dst, uint64_t off, size_t n,
                            pdckpt_error *err);
/* IO error when the file is no longer the version skimmed (size, mtime, ctime, inode). */
pdckpt_status pdk_skim_check(const pdk_skim *s, pdckpt_error *err);

#endif /* PDK_PICKLE_SKIM_H */
