/*
 * fault.c - the counters behind fault.h.  Built only for fault-injection
 * test builds (CREW_FAULT_INJECTION).
 */
#include "fault.h"

#include <stdatomic.h>

static _Atomic long countdown[CREW_FAULT_KINDS];
static _Atomic bool sticky_mode[CREW_FAULT_KINDS];
static _Atomic long hits[CREW_FAULT_KINDS];

void crew_fault_arm(int kind, long nth, bool sticky)
{
    /* seq_cst throughout: a test harness, where simplicity beats speed. */
    atomic_store(&hits[kind], 0);
    atomic_store(&sticky_mode[kind], sticky);
    atomic_store(&countdown[kind], nth);
}

long crew_fault_hits(int kind)
{
    return atomic_load(&hits[kind]);
}

bool crew__fault(int kind)
{
    long left = atomic_load(&countdown[kind]);

    while (left > 0) {
        if (atomic_compare_exchange_weak(&countdown[kind], &left,
                                         left - 1)) {
            if (left != 1)
                return false;
            if (atomic_load(&sticky_mode[kind]))
                atomic_store(&countdown[kind], -1);
            atomic_fetch_add(&hits[kind], 1);
            return true;
        }
    }
    if (left < 0) {             /* sticky: every call after the nth */
        atomic_fetch_add(&hits[kind], 1);
        return true;
    }
    return false;
}
