/*
 * error.c - names for crew's error codes.  Stateless.
 */
#include "crew.h"

const char *crew_strerror(int err)
{
    switch (err) {
    case CREW_OK:        return "success";
    case CREW_EINVAL:    return "invalid argument";
    case CREW_ENOMEM:    return "out of memory";
    case CREW_EAGAIN:    return "queue full";
    case CREW_ETIMEDOUT: return "timed out";
    case CREW_ESHUTDOWN: return "pool is shut down";
    case CREW_ECANCELED: return "task cancelled";
    case CREW_ETHREAD:   return "could not start a worker thread";
    case CREW_EEXIT:     return "task ended its thread";
    case CREW_EBUSY:     return "busy: not finished, already started, "
                                "or in use";
    case CREW_EDEADLK:   return "call would wait for itself";
    default:             return "unknown error";
    }
}
