#ifndef HEAP_STATS_H
#define HEAP_STATS_H
#include <stddef.h>

/// Bytes the C allocator has handed out and not taken back, every arena and mmapped block
/// included (glibc's mallinfo2: uordblks + hblkhd); 0 where there is no mallinfo2.
size_t heap_stats_in_use(void);

#endif
