/*
 * heapcount.c - heap accounting for the benchmarks: the malloc family is
 * interposed in the executable (forwarded to the real one with
 * dlsym(RTLD_NEXT)) and counted, per thread so that counting adds no
 * contention, between heap_start() and heap_read().  Sanitizer builds
 * bring their own malloc: nothing is counted there (heap_counted() says
 * so).  Shared by bench/seed.c and bench/peers.
 */
#include "heapcount.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 1024

struct slot {
    alignas(64) atomic_uint_fast64_t bytes;
    atomic_uint_fast64_t calls;
};

static struct slot slots[SLOTS];
static atomic_uint next_slot;
static _Thread_local struct slot *tls_slot;

/* A thread's own slot (shared only when more than SLOTS threads ran). */
static inline struct slot *my_slot(void)
{
    struct slot *s = tls_slot;
    if (s == NULL) {
        unsigned i = atomic_fetch_add_explicit(&next_slot, 1,
                                               memory_order_relaxed);
        s = &slots[i % SLOTS];
        tls_slot = s;
    }
    return s;
}

/* ------------------------------------------------------------------ */
/* Heap accounting: the malloc family, interposed.                     */
/* ------------------------------------------------------------------ */

/* Sanitizers bring their own malloc: then heap figures read "n/a". */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_HEAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define COUNT_HEAP 0
#endif
#endif
#ifndef COUNT_HEAP
#define COUNT_HEAP 1
#endif

static atomic_bool heap_counting;

#if COUNT_HEAP
typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_alloc_fn)(size_t, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef void *(*valloc_fn)(size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_alloc_fn real_aligned_alloc;
static memalign_fn real_memalign;
static valloc_fn real_valloc;
static valloc_fn real_pvalloc;

/*
 * dlsym() may itself allocate (calloc for its error state).  While the real
 * functions are being looked up, allocations come from this bump buffer;
 * they are never freed and never handed to the real allocator.
 */
#define BOOT_BYTES 16384
static alignas(max_align_t) unsigned char boot_buf[BOOT_BYTES];
static size_t boot_used;
static bool resolving;

static bool in_boot(const void *p)
{
    const unsigned char *c = p;
    return c >= boot_buf && c < boot_buf + BOOT_BYTES;
}

/* Bump allocation with the size stored just before the block. */
static void *boot_alloc(size_t size)
{
    const size_t hdr = sizeof(max_align_t);
    size_t need = hdr + (size + hdr - 1) / hdr * hdr;

    if (size > BOOT_BYTES || need > BOOT_BYTES - boot_used)
        return NULL;
    unsigned char *p = boot_buf + boot_used + hdr;
    memcpy(p - sizeof(size_t), &size, sizeof(size_t));
    boot_used += need;
    return p;                       /* static memory: already zero */
}

static size_t boot_size(const void *p)
{
    size_t size;
    memcpy(&size, (const unsigned char *)p - sizeof(size_t), sizeof size);
    return size;
}

/* dlsym() returns void *; memcpy keeps ISO C happy about the conversion. */
static void lookup(void *fnptr, size_t fnsize, const char *name)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym != NULL)
        memcpy(fnptr, &sym, fnsize);
}

static void resolve(void)
{
    if (real_malloc != NULL || resolving)
        return;
    resolving = true;
    lookup(&real_calloc, sizeof real_calloc, "calloc");
    lookup(&real_realloc, sizeof real_realloc, "realloc");
    lookup(&real_free, sizeof real_free, "free");
    lookup(&real_posix_memalign, sizeof real_posix_memalign,
           "posix_memalign");
    lookup(&real_aligned_alloc, sizeof real_aligned_alloc, "aligned_alloc");
    lookup(&real_memalign, sizeof real_memalign, "memalign");
    lookup(&real_valloc, sizeof real_valloc, "valloc");
    lookup(&real_pvalloc, sizeof real_pvalloc, "pvalloc");
    malloc_fn m = NULL;
    lookup(&m, sizeof m, "malloc");
    if (m == NULL || real_calloc == NULL || real_realloc == NULL ||
        real_free == NULL) {
        static const char msg[] = "peers: cannot find the real malloc\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(70);
    }
    real_malloc = m;                /* last: marks resolution complete */
    resolving = false;
}

/* Runs before main(), while the process has one thread. */
__attribute__((constructor)) static void heap_init(void)
{
    resolve();
}

static inline void count(size_t bytes)
{
    if (atomic_load_explicit(&heap_counting, memory_order_relaxed)) {
        struct slot *s = my_slot();
        atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    }
}

void *malloc(size_t size)
{
    if (real_malloc == NULL) {
        if (resolving)
            return boot_alloc(size);
        resolve();
    }
    count(size);
    return real_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (real_malloc == NULL) {
        if (resolving) {
            if (size != 0 && n > SIZE_MAX / size)
                return NULL;
            return boot_alloc(n * size);
        }
        resolve();
    }
    count(size != 0 && n <= SIZE_MAX / size ? n * size : 0);
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (real_malloc == NULL) {
        if (resolving) {
            void *q = boot_alloc(size);
            if (q != NULL && p != NULL) {
                size_t old = boot_size(p);
                memcpy(q, p, old < size ? old : size);
            }
            return q;
        }
        resolve();
    }
    if (p != NULL && in_boot(p)) {
        void *q = malloc(size);
        if (q != NULL) {
            size_t old = boot_size(p);
            memcpy(q, p, old < size ? old : size);
        }
        return q;
    }
    count(size);
    return real_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * size);
}

void free(void *p)
{
    if (p == NULL || in_boot(p))
        return;
    if (real_free == NULL)
        resolve();
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    resolve();
    count(size);
    return real_posix_memalign(out, align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    resolve();
    count(size);
    return real_aligned_alloc(align, size);
}

void *memalign(size_t align, size_t size)
{
    resolve();
    count(size);
    return real_memalign(align, size);
}

void *valloc(size_t size)
{
    resolve();
    count(size);
    return real_valloc(size);
}

void *pvalloc(size_t size)
{
    resolve();
    count(size);
    return real_pvalloc(size);
}
#endif /* COUNT_HEAP */

bool heap_counted(void)
{
    return COUNT_HEAP != 0;
}

void heap_start(void)
{
    for (int i = 0; i < SLOTS; i++) {
        atomic_store_explicit(&slots[i].bytes, 0, memory_order_relaxed);
        atomic_store_explicit(&slots[i].calls, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&heap_counting, true, memory_order_seq_cst);
}

void heap_read(uint64_t *bytes, uint64_t *calls)
{
    atomic_store_explicit(&heap_counting, false, memory_order_seq_cst);
    *bytes = 0;
    *calls = 0;
    for (int i = 0; i < SLOTS; i++) {
        *bytes += atomic_load_explicit(&slots[i].bytes, memory_order_relaxed);
        *calls += atomic_load_explicit(&slots[i].calls, memory_order_relaxed);
    }
}

