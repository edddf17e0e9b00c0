/*
 * fault.h - fault injection for tests: make the Nth allocation or thread
 * start inside crew fail, to prove every failure path reports a clear
 * error, leaves the pool usable or cleanly shut, and leaks nothing.
 *
 * Compiled in only with -DCREW_FAULT_INJECTION=ON (a test build); then the
 * counters below are process-wide, which is acceptable for a test build
 * and nowhere else.  In normal builds every hook is the constant false.
 */
#ifndef CREW_FAULT_H
#define CREW_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

enum crew_fault_kind {
    CREW_FAULT_ALLOC = 0,      /* malloc, calloc, posix_memalign, mmap */
    CREW_FAULT_THREAD = 1,     /* pthread_create */
    CREW_FAULT_KINDS
};

#ifdef CREW_FAULT_INJECTION
/* Test API: the nth call of `kind` from now fails (1: the next one), and
 * with `sticky` every call after it too; nth 0 disarms. */
void crew_fault_arm(int kind, long nth, bool sticky);
/* How many calls of `kind` were failed since the last arm. */
long crew_fault_hits(int kind);
bool crew__fault(int kind);
#else
#define crew__fault(kind) false
#endif

static inline void *crew__malloc(size_t n)
{
    return crew__fault(CREW_FAULT_ALLOC) ? NULL : malloc(n);
}

static inline void *crew__calloc(size_t n, size_t size)
{
    return crew__fault(CREW_FAULT_ALLOC) ? NULL : calloc(n, size);
}

static inline int crew__memalign(void **p, size_t align, size_t n)
{
    return crew__fault(CREW_FAULT_ALLOC) ? -1 : posix_memalign(p, align, n);
}

static inline int crew__thread_create(pthread_t *tid,
                                      const pthread_attr_t *attr,
                                      void *(*fn)(void *), void *arg)
{
    return crew__fault(CREW_FAULT_THREAD) ? -1 :
           pthread_create(tid, attr, fn, arg);
}

#endif /* CREW_FAULT_H */
