/*
 * heapcount.h - count heap allocations in a benchmark's timed section
 * (see heapcount.c).  Link heapcount.c into the executable.
 */
#ifndef CREW_BENCH_HEAPCOUNT_H
#define CREW_BENCH_HEAPCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* False in sanitizer builds, where nothing is counted. */
bool heap_counted(void);
/* Zero the counts and start counting. */
void heap_start(void);
/* Stop counting; the bytes requested and calls made since heap_start(). */
void heap_read(uint64_t *bytes, uint64_t *calls);

#ifdef __cplusplus
}
#endif

#endif
