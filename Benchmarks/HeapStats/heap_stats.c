// The heap in use, for the benchmarks' per-entry memory figures: page-granular RSS cannot see
// a few kilobytes per entry, and freed memory reused by a measured step hides from it.
#include "heap_stats.h"
#if __has_include(<malloc.h>)
#include <malloc.h> // defines __GLIBC__ on glibc, through <features.h>
#endif

size_t heap_stats_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
#else
    return 0;
#endif
}
