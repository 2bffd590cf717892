/* SPDX-License-Identifier: Apache-2.0 */
/*
 * input.c — opens a file as one read-only byte range.  By default the file is read into memory
 * the load owns (preads, one thread per core for large files), so a later truncation or rewrite of
 * the file by another program cannot change or kill what was loaded.  Zero-copy loads map the file
 * instead (tensor data is then returned in place): faster to open, but a truncation by another
 * writer raises SIGBUS on the next touch and an in-place rewrite changes the returned arrays —
 * the caller asks for that explicitly.  Opens go through safe_open.c (never block, refuse
 * anything but a regular file).
 */
#include "pdk_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Small files are read rather than mapped: a mapping costs a VMA (vm.max_map_count is ~65k, and a
 * per-variable directory can hold more files than that) and page faults that a read avoids. */
#define MAP_MIN_BYTES (64u << 10)
/* Each reading thread gets at least this much of a file: below it, starting a thread costs more
 * than it saves.  One thread spends most of a warm read copying into and faulting in fresh
 * pages, and a cold one waiting for the disk: on a 2-core machine a second thread halves both. */
#define PART_MIN_BYTES   ((size_t)32 << 20)
#define MAX_READ_THREADS 64
/* Reads of a file that changes while it is read are retried this many times in all. */
#define READ_ATTEMPTS 4

static void unmap(void *ctx, void *data, size_t size) {
    (void)ctx;
    if (data && size) munmap(data, size);
}

/* Where the file's bytes go in the buffer: a plain read puts byte x at x; a placed read (n > 0)
 * puts the bytes from at[i] on (up to at[i + 1]) shift[i] further, after the filler before them. */
typedef struct layout {
    uint64_t *at, *shift;
    size_t    n;
} layout;

typedef struct read_part {
    int               fd;
    uint8_t          *base;
    const layout     *lay;
    const pdk_placer *placer;
    size_t            off, len;
    int               err;   /* errno of a failed pread, 0 */
    bool              ended; /* the file ended early */
} read_part;

/* One pread of the file's [x, x + want) or less: up to the next place, at most 1 GiB. */
static ssize_t read_piece(const read_part *p, size_t x, size_t want, size_t *seg) {
    const layout *l = p->lay;
    while (*seg < l->n && l->at[*seg] <= x) (*seg)++;
    size_t shift = *seg ? (size_t)l->shift[*seg - 1] : 0;
    if (*seg < l->n && l->at[*seg] - x < want) want = (size_t)(l->at[*seg] - x);
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    return pread(p->fd, p->base + x + shift, want, (off_t)x);
}

/* Writes the filler of the places in the part: the first touch of fresh memory is a page
 * fault, so each reading thread touches its own. */
static void write_fillers(const read_part *p) {
    const layout *l = p->lay;
    for (size_t i = 0; i < l->n; i++) {
        if (l->at[i] < p->off || l->at[i] - p->off >= p->len) continue;
        uint64_t before = i ? l->shift[i - 1] : 0, len = l->shift[i] - before;
        p->placer->fill(p->base + l->at[i] + before, (size_t)(len % PDK_DATA_ALIGN));
    }
}

static void *read_part_run(void *arg) {
    read_part *p = arg;
    size_t     done = 0, seg = 0;
    write_fillers(p);
    while (done < p->len) {
        ssize_t n = read_piece(p, p->off + done, p->len - done, &seg);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return p->err = errno, NULL;
        if (n == 0) return p->ended = true, NULL;
        done += (size_t)n;
    }
    return NULL;
}

/* How many threads read `size` bytes: `threads` (0: every online core), fewer for small files.
 * A file too small for two parts does not ask for the cores (glibc reads a /sys file each time:
 * three system calls of a small load's ~15). */
static unsigned read_threads(size_t size, uint32_t threads) {
    size_t fit = size / PART_MIN_BYTES;
    if (fit < 2) return 1;
    long   cores = threads ? 0 : sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = threads ? threads : cores > 0 ? (size_t)cores : 1;
    if (n > fit) n = fit;
    if (n > MAX_READ_THREADS) n = MAX_READ_THREADS;
    return n ? (unsigned)n : 1;
}

/* Reads the file's [0, size) into base (as `lay` places it) in `n` page-aligned parts, one per
 * thread (this one reads the first); a part whose thread could not start is read here after. */
static void read_parts(int fd, uint8_t *base, const layout *lay, const pdk_placer *placer,
                       size_t size, unsigned n, read_part *parts) {
    pthread_t helpers[MAX_READ_THREADS];
    bool      started[MAX_READ_THREADS] = {false};
    size_t    step = (size / n) & ~(size_t)4095;
    for (unsigned i = 0; i < n; i++) {
        size_t off = i * step, len = i + 1 == n ? size - off : step;
        parts[i] = (read_part){fd, base, lay, placer, off, len, 0, false};
        if (i) started[i] = pthread_create(&helpers[i], NULL, read_part_run, &parts[i]) == 0;
    }
    read_part_run(&parts[0]);
    for (unsigned i = 1; i < n; i++) {
        if (started[i])
            pthread_join(helpers[i], NULL);
        else
            read_part_run(&parts[i]);
    }
}

/* Virtio's balloon device and its free page reporting feature bit (virtio 1.2, 5.5.3). */
#define VIRTIO_ID_BALLOON          5
#define VIRTIO_BALLOON_F_REPORTING 5

static bool read_attr(const char *dir, const char *name, char *buf, size_t cap) {
    char path[600];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    return true;
}

bool pdk_free_pages_reported(const char *devices) {
    DIR *d = opendir(devices);
    if (!d) return false;
    bool           found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char dir[400], id[32], bits[160]; /* "features": one '0'/'1' per bit, bit 0 first */
        if (e->d_name[0] == '.' ||
            snprintf(dir, sizeof dir, "%s/%s", devices, e->d_name) >= (int)sizeof dir)
            continue;
        found =
            read_attr(dir, "device", id, sizeof id) && strtol(id, NULL, 0) == VIRTIO_ID_BALLOON &&
            read_attr(dir, "features", bits, sizeof bits) &&
            strlen(bits) > VIRTIO_BALLOON_F_REPORTING && bits[VIRTIO_BALLOON_F_REPORTING] == '1';
    }
    closedir(d);
    return found;
}

static bool huge_pages_pay;
static void judge_huge_pages(void) {
    huge_pages_pay = !pdk_free_pages_reported("/sys/bus/virtio/devices");
}

/* The page size fresh memory for a large read is faulted in with (most of a warm read is the
 * first touch of that memory).  2 MiB pages (THP, "madvise" mode) mean 512 times fewer faults;
 * but a virtual machine whose guest reports free memory to its host (virtio-balloon free page
 * reporting, which reports free 2 MiB blocks) has each huge page handed back and faulted in anew
 * on the host, and there 4 KiB pages, taken from smaller free blocks first, cost half the CPU
 * (docs/speed.md: W3 sys 0.55 s against 0.93 s, and less spread). */
static void advise_pages(const pdckpt_allocator *a, void *data, size_t size) {
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if ((a && a->alloc) || size < ((size_t)4 << 20)) return;
    pthread_once(&once, judge_huge_pages);
    uintptr_t start = ((uintptr_t)data + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)data + size) & ~(uintptr_t)4095;
    if (end > start)
        madvise((void *)start, end - start, huge_pages_pay ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
    (void)a, (void)data, (void)size;
#endif
}

static bool same_version(const struct stat *a, const struct stat *b) {
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* How a file is read: the allocator of its buffer, the number of reading threads, and where
 * its payloads go (`placer`, may be NULL; the layout of a successful read is left in *lay). */
typedef struct read_how {
    const pdckpt_allocator *a;
    uint32_t                threads;
    /* room after the data for aligning tensors in place (pdk_tree_relayout): address space only,
     * untouched pages cost no memory */
    bool              slack;
    const pdk_placer *placer;
    layout           *lay;
} read_how;

static void layout_free(const pdckpt_allocator *a, layout *lay) {
    pdk_free(a, lay->at, lay->n * sizeof *lay->at);
    pdk_free(a, lay->shift, lay->n * sizeof *lay->shift);
    *lay = (layout){NULL, NULL, 0};
}

/* Fills *lay from the placer's places in `pl`: the filler before each place is the shortest that
 * lands its payload aligned.  False (nothing kept) when the places are out of order. */
static bool layout_from(const read_how *how, const pdk_place *pl, size_t n, size_t size,
                        layout *lay) {
    lay->at = pdk_alloc(how->a, n * sizeof *lay->at);
    lay->shift = pdk_alloc(how->a, n * sizeof *lay->shift);
    lay->n = n;
    if (!lay->at || !lay->shift) return false;
    uint64_t shift = 0;
    for (size_t i = 0; i < n; i++) {
        if (pl[i].at > pl[i].payload || pl[i].payload > size || (i && pl[i].at <= pl[i - 1].at))
            return false;
        size_t need =
            (size_t)((PDK_DATA_ALIGN - (pl[i].payload + shift) % PDK_DATA_ALIGN) % PDK_DATA_ALIGN);
        shift += how->placer->fill(NULL, need);
        lay->at[i] = pl[i].at;
        lay->shift[i] = shift;
    }
    return shift <= SIZE_MAX - size;
}

/* Asks the placer where the payloads of the file (`size` bytes) go; an empty layout reads it as
 * it is (no placer, nothing to place, or no memory for the plan). */
static void plan_layout(const read_how *how, int fd, size_t size, layout *lay) {
    *lay = (layout){NULL, NULL, 0};
    pdk_place *pl = NULL;
    size_t     n = how->placer && size ? how->placer->scan(fd, size, how->a, &pl) : 0;
    if (n && !layout_from(how, pl, n, size, lay)) layout_free(how->a, lay);
    if (pl) pdk_free(how->a, pl, n * sizeof *pl);
}

/* Reads the file's [0, size) into base: a large cold file with O_DIRECT (cold_read.c), any
 * other (or one whose file system refuses O_DIRECT) by read_parts.  Returns 0 or an errno. */
static int read_into(int fd, uint8_t *base, size_t size, const read_how *how, bool *ended) {
    size_t cached = 0;
    bool   known = size >= PDK_DIRECT_MIN_BYTES && !how->lay->n && pdk_direct_enabled() &&
                 pdk_cached_bytes(fd, size, &cached);
    if (pdk_direct_pays(size, (uintptr_t)base, how->lay->n, known, cached)) {
        int e = pdk_read_direct(fd, base, size, pdk_direct_readers(how->threads), ended);
        if (e >= 0) return e;
    }
    read_part parts[MAX_READ_THREADS];
    unsigned  n = read_threads(size, how->threads);
    read_parts(fd, base, how->lay, how->placer, size, n, parts);
    int e = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!e) e = parts[i].err;
        *ended = *ended || parts[i].ended;
    }
    return e;
}

/* One attempt: *changed when the file was written (size, mtime or ctime moved) meanwhile. */
static pdckpt_status read_once(int fd, const char *path, const struct stat *before,
                               const read_how *how, pdckpt_buffer **out, bool *changed,
                               pdckpt_error *err) {
    size_t size = (size_t)before->st_size;
    plan_layout(how, fd, size, how->lay);
    size_t total = size + (how->lay->n ? (size_t)how->lay->shift[how->lay->n - 1] : 0);
    size_t room = how->slack ? total / 8 + ((size_t)64 << 10) : 0;
    if (room > SIZE_MAX - total) room = 0;
    pdckpt_buffer *buf = total ? pdk_buffer_new_alloc(how->a, total + room, false) : NULL;
    if (total && !buf)
        return layout_free(how->a, how->lay),
               pdk_fail(err, PDCKPT_ERR_NOMEM, path, -1,
                        "out of memory allocating %zu bytes for the file's contents", total + room);
    if (buf) advise_pages(how->a, pdk_buffer_data(buf), total);
    bool        ended = false;
    int         e = read_into(fd, buf ? pdk_buffer_data(buf) : NULL, size, how, &ended);
    struct stat after;
    if (!e && fstat(fd, &after) != 0) e = errno;
    *changed = !e && (ended || !same_version(before, &after));
    if (e || *changed) {
        pdckpt_buffer_release(buf);
        layout_free(how->a, how->lay);
        if (e) return pdk_fail_sys(err, e, path, "read");
        return pdk_fail(err, PDCKPT_ERR_IO, path, -1,
                        "the file changed while it was being read (%d attempts): another "
                        "program is writing it",
                        READ_ATTEMPTS);
    }
    *out = buf;
    return PDCKPT_OK;
}

static pdckpt_status read_all(int fd, const char *path, struct stat *st, const read_how *how,
                              pdckpt_buffer **out, pdckpt_error *err) {
    for (int attempt = 1;; attempt++) {
        bool          changed = false;
        pdckpt_status status = read_once(fd, path, st, how, out, &changed, err);
        if (!changed || attempt == READ_ATTEMPTS) return status;
        pdk_error_reset(err);
        if (fstat(fd, st) != 0) return pdk_fail_sys(err, errno, path, "stat");
        if ((uint64_t)st->st_size > SIZE_MAX)
            return pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1, "file does not fit in memory");
    }
}

static pdckpt_status map_file(int fd, const char *path, struct stat *st, const read_how *how,
                              pdckpt_buffer **out, pdckpt_error *err) {
    size_t size = (size_t)st->st_size;
    void  *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return read_all(fd, path, st, how, out, err); /* e.g. no mmap on FS */
    *out = pdk_buffer_new_custom(how->a, map, size, true, unmap, NULL);
    if (*out) return PDCKPT_OK;
    munmap(map, size);
    return pdk_fail_nomem(err, "mapping");
}

/* A placed read's input is the file with the filler in it; its layout turns offsets back. */
static void keep_layout(pdk_input *in, const read_how *rh) {
    if (!rh->lay->n) return;
    in->len += (size_t)rh->lay->shift[rh->lay->n - 1];
    in->place_at = rh->lay->at;
    in->place_shift = rh->lay->shift;
    in->n_places = rh->lay->n;
    in->place_alloc = rh->a;
    *rh->lay = (layout){NULL, NULL, 0};
}

static pdckpt_status open_input(int dirfd, const char *rel, unsigned how, const char *path,
                                bool zero_copy, const read_how *rh, pdk_input *out,
                                pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->name = path;
    int         fd;
    struct stat st;
    PDK_TRY(pdk_open_read(dirfd, rel, how, path, &fd, &st, err));
    pdckpt_status status = PDCKPT_OK;
    if ((uint64_t)st.st_size > SIZE_MAX)
        status = pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1, "file does not fit in memory");
    if (status == PDCKPT_OK && st.st_size > 0) {
        status = zero_copy && (size_t)st.st_size >= MAP_MIN_BYTES
                     ? map_file(fd, path, &st, rh, &out->owner, err)
                     : read_all(fd, path, &st, rh, &out->owner, err);
        if (status == PDCKPT_OK && out->owner) { /* a retried read may find it emptied */
            out->data = pdk_buffer_data(out->owner);
            out->len = (size_t)st.st_size; /* the buffer may be larger (slack) */
            keep_layout(out, rh);
        }
    }
    close(fd);
    if (status == PDCKPT_OK && !out->data) out->data = (const uint8_t *)"";
    return status;
}

pdckpt_status pdk_input_open_file(const char *path, bool zero_copy, const pdckpt_allocator *a,
                                  pdk_input *out, pdckpt_error *err) {
    layout   lay = {NULL, NULL, 0};
    read_how rh = {a, 0, false, NULL, &lay};
    return open_input(AT_FDCWD, path, 0, path, zero_copy, &rh, out, err);
}

pdckpt_status pdk_input_open_load(const char *path, const pdckpt_load_options *opts, pdk_input *out,
                                  pdckpt_error *err) {
    return pdk_input_open_placed(path, opts, NULL, out, err);
}

/* A file read (or mapped) as the load options say. */
static pdckpt_status open_with_options(int dirfd, const char *rel, unsigned how, const char *path,
                                       const pdckpt_load_options *opts, const pdk_placer *placer,
                                       pdk_input *out, pdckpt_error *err) {
    layout   lay = {NULL, NULL, 0};
    read_how rh = {opts->allocator, opts->threads, opts->require_aligned && !opts->zero_copy,
                   opts->zero_copy ? NULL : placer, &lay};
    return open_input(dirfd, rel, how, path, opts->zero_copy, &rh, out, err);
}

pdckpt_status pdk_input_open_placed(const char *path, const pdckpt_load_options *opts,
                                    const pdk_placer *placer, pdk_input *out, pdckpt_error *err) {
    return open_with_options(AT_FDCWD, path, 0, path, opts, placer, out, err);
}

void pdk_input_file_offset(const pdk_input *in, pdckpt_error *err) {
    if (!err || err->offset < 0 || !in->n_places) return;
    uint64_t b = (uint64_t)err->offset, shift = 0;
    for (size_t i = 0; i < in->n_places; i++) {
        uint64_t filler_start = in->place_at[i] + shift;
        if (b < filler_start) break;
        if (b < in->place_at[i] + in->place_shift[i]) { /* inside the filler: the place itself */
            err->offset = (int64_t)in->place_at[i];
            return;
        }
        shift = in->place_shift[i];
    }
    err->offset = (int64_t)(b - shift);
}

pdckpt_status pdk_input_open_file_at(int dirfd, const char *rel, const char *path, bool zero_copy,
                                     const pdckpt_allocator *a, pdk_input *out, pdckpt_error *err) {
    layout   lay = {NULL, NULL, 0};
    read_how rh = {a, 0, false, NULL, &lay};
    return open_input(dirfd, rel, PDK_OPEN_BENEATH, path, zero_copy, &rh, out, err);
}

pdckpt_status pdk_input_open_load_at(int dirfd, const char *rel, const char *path,
                                     const pdckpt_load_options *opts, pdk_input *out,
                                     pdckpt_error *err) {
    return open_with_options(dirfd, rel, PDK_OPEN_BENEATH, path, opts, NULL, out, err);
}

void pdk_input_from_memory(const void *data, size_t len, bool zero_copy, pdk_input *out) {
    memset(out, 0, sizeof *out);
    out->data = data ? data : "";
    out->len = len;
    out->name = "<memory>";
    out->copy_tensors = !zero_copy;
}

void pdk_input_close(pdk_input *in) {
    if (!in) return;
    layout lay = {in->place_at, in->place_shift, in->n_places};
    if (lay.n) layout_free(in->place_alloc, &lay);
    in->place_at = in->place_shift = NULL;
    in->n_places = 0;
    pdckpt_buffer_release(in->owner);
    in->owner = NULL;
    in->data = NULL;
    in->len = 0;
}
