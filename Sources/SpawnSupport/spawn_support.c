// One home for what every process this project spawns needs from the C library and Swift
// cannot reach: see include/spawn_support.h.
#define _GNU_SOURCE
#include "spawn_support.h"

#include <errno.h>

int spawn_support_close_from(posix_spawn_file_actions_t *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    (void)actions;
    (void)lowest;
    return ENOSYS;
#endif
}
