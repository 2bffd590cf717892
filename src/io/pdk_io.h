/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_io.h — byte inputs and output sinks.  Parsers see an input as one contiguous byte range
 * (a read-only mapping of the file, or caller memory); writers push bytes into a sink that buffers
 * small writes and passes large ones straight through.  Nothing here knows any format.
 */
#ifndef PDK_IO_H
#define PDK_IO_H

#include "../core/pdk_core.h"

/* ---- inputs ---- */

typedef struct pdk_input {
    const uint8_t *data;
    size_t         len;
    const char    *name; /* path or "<memory>"; borrowed from the caller */
    pdckpt_buffer
        *owner;        /* holds `data` (mapping or private copy); NULL when it is caller memory */
    bool copy_tensors; /* tensors must not point into `data` (caller memory, !zero_copy) */
    /* the loader aligns tensors afterwards by moving them inside `owner` (pdk_tree_relayout):
     * misaligned tensors are left in place rather than copied */
    bool relayout;
    /* a placed read (pdk_input_open_placed): filler was inserted before file offset place_at[i],
     * after which the buffer runs place_shift[i] bytes ahead of the file (both ascending) */
    uint64_t               *place_at, *place_shift;
    size_t                  n_places;
    const pdckpt_allocator *place_alloc;
} pdk_input;

/* Where a format wants filler inserted so that a payload lands PDK_DATA_ALIGN-aligned in the
 * buffer a file is read into: before file offset `at` (where the format accepts filler), for the
 * payload starting at file offset `payload` (>= at). */
typedef struct pdk_place {
    uint64_t at, payload;
} pdk_place;

typedef struct pdk_placer {
    /* The places of the file behind `fd` (`size` bytes, read with pread), ascending and at
     * distinct offsets, in *out (pdk_alloc'd from `a`); 0 (and *out NULL) to read it plainly. */
    size_t (*scan)(int fd, uint64_t size, const pdckpt_allocator *a, pdk_place **out);
    /* The length of the shortest filler the format accepts whose length is `need` modulo
     * PDK_DATA_ALIGN (need < PDK_DATA_ALIGN); with `dst`, writes it there.  At most max_fill. */
    size_t (*fill)(uint8_t *dst, size_t need);
    size_t max_fill;
} pdk_placer;

/* Reads (or with zero_copy maps) the whole regular file at `path`.  A read is retried when the
 * file changes meanwhile (size, mtime or ctime), and fails with IO after a few attempts; a mapping
 * is hurt by later truncation (SIGBUS) and in-place rewrites, so only callers who ask map. */
pdckpt_status pdk_input_open_file(const char *path, bool zero_copy, const pdckpt_allocator *a,
                                  pdk_input *out, pdckpt_error *err);
/* The same for `rel` resolved beneath the directory `dirfd` (PDK_OPEN_BENEATH: no "..", no
 * absolute name, no symbolic link), so a directory that is replaced while it is read cannot mix
 * files of two checkpoints and a name cannot reach outside; `shown` names the file in errors. */
/* The same with a load's options: its allocator, zero_copy and reading threads. */
pdckpt_status pdk_input_open_load(const char *path, const pdckpt_load_options *opts, pdk_input *out,
                                  pdckpt_error *err);
/* The same, with `placer` (may be NULL) asked where to insert filler so each payload it names lands
 * aligned: the input is then the file with that filler inserted (the format's parser reads it as
 * the file), and nothing needs moving afterwards.  The file is still read, never mapped. */
pdckpt_status pdk_input_open_placed(const char *path, const pdckpt_load_options *opts,
                                    const pdk_placer *placer, pdk_input *out, pdckpt_error *err);
/* Turns err->offset, an offset into a placed input's buffer, back into the file's offset. */
void          pdk_input_file_offset(const pdk_input *in, pdckpt_error *err);
pdckpt_status pdk_input_open_file_at(int dirfd, const char *rel, const char *shown, bool zero_copy,
                                     const pdckpt_allocator *a, pdk_input *out, pdckpt_error *err);
/* Both: `rel` beneath `dirfd` with a load's options (the file checked is the file read). */
pdckpt_status pdk_input_open_load_at(int dirfd, const char *rel, const char *shown,
                                     const pdckpt_load_options *opts, pdk_input *out,
                                     pdckpt_error *err);
/* True when `devices` (sysfs' virtio device directory) has a balloon that reports free pages to
 * the host: then large reads are faulted in with 4 KiB pages, not huge ones (input.c). */
bool pdk_free_pages_reported(const char *devices);

/* pdckpt's own index beside a file it saved: a pickle's lazy-open index (pickle_index.c) and a
 * sharded checkpoint's "<id>.pdkidx" (dist_meta_index.c) */
#define PDK_NAME_INDEX ".pdkidx"

/* ---- cold reads with O_DIRECT (cold_read.c) ---- */

/* Files from this size on may be read with O_DIRECT when cold; buffer and offsets align to
 * PDK_DIRECT_ALIGN; this many readers keep requests queued unless `threads=` says otherwise. */
#define PDK_DIRECT_MIN_BYTES ((size_t)32 << 20)
#define PDK_DIRECT_ALIGN     4096u
#define PDK_DIRECT_READERS   4u
/* The bytes of fd's [0, size) in the page cache (cachestat(2)); false when it cannot tell. */
bool pdk_cached_bytes(int fd, size_t size, size_t *cached);
/* Whether a read of `size` bytes into `base` goes with O_DIRECT: large, aligned, not a placed
 * read (its filler shifts the bytes off the blocks), known to be mostly (> 7/8) uncached. */
bool     pdk_direct_pays(size_t size, uintptr_t base, size_t n_places, bool known, size_t cached);
unsigned pdk_direct_readers(uint32_t threads);
/* True when PDCKPT_DIRECT_READ=1 is in the environment (O_DIRECT for cold files is opt-in). */
bool pdk_direct_enabled(void);
/* Reads [0, size) with O_DIRECT by `readers` threads: 0, an errno, or -1 when the descriptor
 * cannot take O_DIRECT (nothing read: read it buffered).  *ended: the file was shorter. */
int  pdk_read_direct(int fd, uint8_t *base, size_t size, unsigned readers, bool *ended);
void pdk_input_from_memory(const void *data, size_t len, bool zero_copy, pdk_input *out);
void pdk_input_close(pdk_input *in);

/* ---- opening what is read (safe_open.c) ---- */

#include <sys/stat.h>

#define PDK_OPEN_BENEATH  1u /* `rel` comes from inside a checkpoint: resolve it beneath dirfd */
#define PDK_OPEN_DIR_OK   2u /* a directory is acceptable too */
#define PDK_OPEN_NOFOLLOW 4u /* a symbolic link at `rel`'s last component is refused (ELOOP) */
/* Opens `rel` (relative to dirfd, or AT_FDCWD) for reading without ever blocking: O_NONBLOCK,
 * then fstat, then only a regular file (or a directory with PDK_OPEN_DIR_OK) is accepted and
 * O_NONBLOCK cleared; FIFOs, sockets and devices are refused naming `shown`.  *st is its stat. */
pdckpt_status pdk_open_read(int dirfd, const char *rel, unsigned how, const char *shown, int *fd,
                            struct stat *st, pdckpt_error *err);
/* A name from inside a checkpoint: relative, no empty, "." or ".." component (FORMAT). */
pdckpt_status pdk_check_inner_name(const char *name, const char *shown, pdckpt_error *err);
/* Whether `rel` beneath dirfd is a regular file reached without links (opens, never blocks). */
bool pdk_is_regular_beneath(int dirfd, const char *rel);
/* ARGUMENT "expected a regular file, found a FIFO" (device, socket, directory, link). */
pdckpt_status pdk_refuse_file_kind(mode_t mode, const char *shown, pdckpt_error *err);
/* The openat2 fallback (kernels before 5.6): one component at a time with O_NOFOLLOW.  -1 and
 * errno ELOOP when a component is a symbolic link.  Exposed for the tests. */
int pdk_open_beneath_walk(int dirfd, const char *rel, int flags);

/* ---- sinks ---- */

typedef struct pdk_sink pdk_sink;

typedef struct pdk_sink_ops {
    /* Emits bytes past the buffer; must write all of them or fail. */
    pdckpt_status (*emit)(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err);
    pdckpt_status (*finish)(pdk_sink *sink, pdckpt_error *err); /* after the last emit */
    void (*discard)(pdk_sink *sink);                            /* on failure */
    void (*destroy)(pdk_sink *sink);                            /* frees the sink */
} pdk_sink_ops;

struct pdk_sink {
    const pdk_sink_ops     *ops;
    const pdckpt_allocator *alloc;
    const char             *name; /* for errors */
    uint8_t                *buf;
    size_t                  buf_len;
    size_t                  buf_cap;
    uint64_t                written; /* bytes accepted so far */
    pdckpt_progress_fn      progress;
    void                   *progress_ctx;
    uint64_t                progress_total;
    uint64_t                progress_next;
};

/* Accepts `len` bytes. */
pdckpt_status pdk_sink_write(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err);
/* The same as a pdk_c_chunk_fn (`sink` is the pdk_sink): pdk_tensor_c_chunks into a sink. */
pdckpt_status pdk_sink_write_chunk(void *sink, const void *bytes, uint64_t len, pdckpt_error *err);
/* Flushes and finishes; the sink is freed whatever the outcome (on failure it is discarded). */
pdckpt_status pdk_sink_commit(pdk_sink *sink, pdckpt_error *err);
/* Discards everything and frees the sink.  NULL ok. */
void pdk_sink_abort(pdk_sink *sink);
/* Reports progress to the save options' callback (also called internally every few MiB). */
void pdk_sink_set_progress(pdk_sink *sink, pdckpt_progress_fn fn, void *ctx, uint64_t total);

/* Atomic file: temp beside `path`, fsync (durable), rename, fsync the directory.  A symbolic link
 * at `path` is followed (its target replaced, the link kept); the replaced file's mode (and owner
 * where permitted) is kept; a directory, FIFO, socket or device there is refused (ARGUMENT). */
pdckpt_status pdk_sink_open_atomic_file(const char *path, bool durable, const pdckpt_allocator *a,
                                        pdk_sink **out, pdckpt_error *err);
/* The same for a file inside a checkpoint directory: a symbolic link there is refused. */
pdckpt_status pdk_sink_open_atomic_inner(const char *path, bool durable, const pdckpt_allocator *a,
                                         pdk_sink **out, pdckpt_error *err);
/* The same for a sidecar ("<file>.pdkidx", "<file>.xxh3") written right after its file's own
 * atomic save, whose sweep already took the sidecar's dead temporaries: no second sweep. */
pdckpt_status pdk_sink_open_sidecar(const char *path, bool durable, const pdckpt_allocator *a,
                                    pdk_sink **out, pdckpt_error *err);
/* Makes an atomic file sink also write "<path>.xxh3" (xxh_sidecar.c); before the first write. */
pdckpt_status pdk_sink_enable_checksum(pdk_sink *sink, pdckpt_error *err);
/* Plain new file (inside a directory transaction): O_EXCL create, fsync on commit if durable;
 * errors name `shown`, the file's final path. */
pdckpt_status pdk_sink_open_plain_file(const char *path, const char *shown, bool durable,
                                       const pdckpt_allocator *a, pdk_sink **out,
                                       pdckpt_error *err);
/* Growable memory; pdk_sink_memory_take hands over the bytes after a successful write phase and
 * then frees the sink (instead of pdk_sink_commit). */
pdckpt_status pdk_sink_open_memory(const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err);
pdckpt_status pdk_sink_memory_take(pdk_sink *sink, void **data, size_t *len, pdckpt_error *err);
/* User storage through the public ops table. */
pdckpt_status pdk_sink_open_callback(const pdckpt_sink_ops *ops, void *self,
                                     const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err);
/* Counts bytes and writes nothing (sizes before emitting). */
pdckpt_status pdk_sink_open_counting(const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err);

/* Shared plumbing for sink implementations. */
pdckpt_status pdk_sink_init(pdk_sink *sink, const pdk_sink_ops *ops, const pdckpt_allocator *a,
                            const char *name, size_t buf_cap, pdckpt_error *err);

/* ---- directory transactions (dir_tx.c) ---- */

typedef struct pdk_dirtx pdk_dirtx;

/* The kind of directory a save writes, and how to recognise one of its files: `owns` gets a file
 * of an existing directory (its path relative to the directory, an open descriptor, its size)
 * and says whether a save of this kind could have written it: 1 yes, 0 no, -1 a read failed
 * (errno set). */
typedef struct pdk_dir_kind {
    const char *name; /* "vars-dir", ... (messages) */
    int (*owns)(const char *rel, int fd, uint64_t size);
} pdk_dir_kind;

/* Starts building a directory that will replace `target` atomically on commit.  A symbolic link
 * at `target` is followed (the directory it names is replaced, the link kept).  An existing
 * directory is replaced only when everything in it belongs to a checkpoint of `kind`: regular
 * files `kind->owns` recognises and subdirectories holding only such files; anything else (a
 * hidden entry, a link, a FIFO, a file it does not recognise) makes the save fail with ARGUMENT
 * naming the entry, before anything is written, and again just before the swap. */
pdckpt_status pdk_dirtx_begin(const char *target, bool durable, const pdk_dir_kind *kind,
                              const pdckpt_allocator *a, pdk_dirtx **out, pdckpt_error *err);
/* Opens `relpath` (may contain '/': subdirectories are created) for writing inside the new dir. */
pdckpt_status pdk_dirtx_open_file(pdk_dirtx *tx, const char *relpath, pdk_sink **out,
                                  pdckpt_error *err);
/* Syncs everything and swaps the new directory in; frees tx. */
pdckpt_status pdk_dirtx_commit(pdk_dirtx *tx, pdckpt_error *err);
/* Removes the half-built directory; frees tx.  NULL ok. */
void pdk_dirtx_abort(pdk_dirtx *tx);

/* ---- filesystem helpers (fs_util.c) ---- */

/* The stem of the temporaries of the file named base[0..base_len) into `out` (NAME_MAX + 1
 * bytes), returning its length: the name itself, or when a temporary's name would not fit
 * NAME_MAX, its first bytes, '~' and the FNV-1a of the whole name in 16 hex digits. */
size_t pdk_temp_stem(const char *base, size_t base_len, char *out);
/* Writes a unique temp path ".<stem>.pdckpt-tmp-<pid>-<hex>" beside `path` into `out`. */
pdckpt_status pdk_temp_path_beside(const char *path, char *out, size_t cap, pdckpt_error *err);
/* fsyncs the directory that contains `path` (or `path` itself when is_dir). */
pdckpt_status pdk_fsync_dir_of(const char *path, bool is_dir, pdckpt_error *err);
/* Removes temps beside `path` left by writers that died (their pid no longer exists): its own
 * (".<base>.pdckpt-tmp-...") and its sidecars' (".<base>.<suffix>.pdckpt-tmp-...", a suffix
 * without a dot), in one pass over the directory; only this user's (another user's look-alike is
 * not this save's to remove). */
void pdk_remove_stale_temps(const char *path);
/* Reads the first `len` bytes of `path` when it is a regular file reached without following a
 * link (a sidecar of ours is told by its head; a link, FIFO or short file never is one). */
bool pdk_read_head_nofollow(const char *path, void *buf, size_t len);
/* Whether everyone who may write the sidecar `side` (a lazy-open index, a checksum sidecar) may
 * write the file `file` it describes too, so trusting the sidecar gives no one more say than
 * the file does: owned by the file's owner or root, its other-write bit only if the file's is,
 * and (`groups`) its group-write bit only if the file's is, the group the same.  A sidecar's
 * stamp is no secret; without this rule anyone who may create files beside a checkpoint (a
 * sticky /tmp, a shared group directory) could plant one.  ACLs are not consulted. */
bool pdk_sidecar_writers_covered(const struct stat *side, const struct stat *file, bool groups);
/* rm -rf that never follows symlinks, walking by directory descriptors (openat with O_NOFOLLOW,
 * unlinkat): a component swapped for a link mid-walk cannot lead it out of the tree.  The _at
 * form removes the entry `name` of the directory open as `dfd`. */
void pdk_remove_tree(const char *path);
void pdk_remove_tree_at(int dfd, const char *name);
bool pdk_is_directory(const char *path);
bool pdk_is_file(const char *path); /* a regular file (after links) */
bool pdk_ends_with(const char *s, const char *suffix);
/* dir + "/" + name + suffix into out (PDCKPT_PATH_MAX; no "/" for an empty dir): how a prefix
 * grows into Paddle's file names; ARGUMENT when it does not fit. */
pdckpt_status pdk_path_join_suffix(char *out, const char *dir, const char *name, const char *suffix,
                                   pdckpt_error *err);
/* mkdir -p `dir`: Paddle's save ops and paddle.save create a missing directory, and so does
 * every pdckpt save (files, directory formats, static and dygraph saves). */
pdckpt_status pdk_make_dirs(const char *dir, pdckpt_error *err);
/* pdk_make_dirs of the directory `path` sits in (nothing for a bare name). */
pdckpt_status pdk_make_parent_dirs(const char *path, pdckpt_error *err);
/* Where a save to `path` lands: symbolic links are followed to what they name (the link is kept
 * and its target replaced), so `out` is the path to write beside and rename over.  *exists says
 * whether something is there; *st is its lstat (never a link). */
pdckpt_status pdk_resolve_save_target(const char *path, char *out, size_t cap, struct stat *st,
                                      bool *exists, pdckpt_error *err);

/* dir + "/" + name into out (no second '/' when dir ends with one); ARGUMENT when too long. */
pdckpt_status pdk_path_join(const char *dir, const char *name, char *out, size_t cap,
                            pdckpt_error *err);
/* The directory part of `path` (".") and its last component, ignoring trailing '/'. */
void pdk_split_path(const char *path, char *dir, size_t dir_cap, const char **base,
                    size_t *base_len);
/* A temporary name beside `path` that every rank of a job can compute from the same `tag`:
 * "<dir>/.<base>.pdckpt-dist-<tag>" (pdk_sweep_temps removes those a killed job left). */
pdckpt_status pdk_temp_path_tagged(const char *path, uint64_t tag, char *out, size_t cap,
                                   pdckpt_error *err);
/* A random 64-bit tag for temp names (pdk_random_u64: getrandom, else clock, pid, addresses). */
uint64_t pdk_random_tag(void);
/* Renames `from` over `to`: a file, or a directory replacing a directory (exchanged with
 * renameat2, else moved aside and back on failure).  Errors name `shown`. */
pdckpt_status pdk_rename_replace(const char *from, const char *to, const char *shown,
                                 pdckpt_error *err);
/* The same, then (durable) the directory of `to` synced; errors name `to`. */
pdckpt_status pdk_rename_replace_durable(const char *from, const char *to, bool durable,
                                         pdckpt_error *err);
/* Writes `len` bytes to `path` atomically: tagged temp, fdatasync (durable), rename, dir sync. */
pdckpt_status pdk_write_file_atomic(const char *path, const void *data, size_t len, bool durable,
                                    pdckpt_error *err);
/* Removes the temporaries killed saves left in `dir` (".<name>.pdckpt-dist-*" and
 * ".<name>.pdckpt-tmp-*"), only those of `base` when it is not NULL, whichever job of this user
 * wrote them: for a directory no other job writes into (another user's stay).  A
 * ".pdckpt-tmp-<pid>-" one whose process still runs (a single-file save into the same directory) is
 * not debris and stays. */
void pdk_sweep_temps(const char *dir, const char *base);

/* ---- integrity sidecars (xxh_sidecar.c): "<file>.xxh3", xxh3-128 per 4 KiB block ---- */

typedef struct pdk_sidecar pdk_sidecar;
pdckpt_status pdk_sidecar_new(const pdckpt_allocator *a, pdk_sidecar **out, pdckpt_error *err);
pdckpt_status pdk_sidecar_update(pdk_sidecar *s, const void *bytes, size_t len, pdckpt_error *err);
/* Writes "<data_path>.xxh3" atomically for the bytes seen so far. */
pdckpt_status pdk_sidecar_publish(pdk_sidecar *s, const char *data_path, bool durable,
                                  pdckpt_error *err);
/* Removes "<data_path>.xxh3" if it is a sidecar of ours (synced when durable), before a new file
 * replaces the data; anything else at that name is left alone. */
pdckpt_status pdk_sidecar_remove_stale(const char *data_path, bool durable, pdckpt_error *err);
/* ARGUMENT when something other than a sidecar of ours is at "<data_path>.xxh3". */
pdckpt_status pdk_sidecar_check_free(const char *data_path, pdckpt_error *err);
void          pdk_sidecar_free(pdk_sidecar *s); /* NULL ok */
void          pdk_sidecar_path(const char *data_path, char *out, size_t cap);

typedef struct pdk_sidecar_result {
    bool     checked; /* a sidecar exists and was read */
    bool     bad;     /* a block's digest differs (the call itself still returns OK) */
    uint64_t offset;  /* first bad block: file offset and length */
    uint64_t len;
    uint64_t file_size;
    char     got[33], want[33];
} pdk_sidecar_result;
/* Checks `path` against its sidecar when there is one.  FORMAT for a malformed sidecar, CORRUPT
 * for a size difference or a sidecar whose own digest is wrong; a bad block is left in *res. */
pdckpt_status pdk_sidecar_check(const char *path, const pdckpt_allocator *a,
                                pdk_sidecar_result *res, pdckpt_error *err);

#endif /* PDK_IO_H */
