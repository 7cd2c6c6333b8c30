#ifndef SPAWN_SUPPORT_H
#define SPAWN_SUPPORT_H

#include <spawn.h>

/// Adds to `actions` the closing, in the child, of every descriptor from `lowest` up, so a
/// spawned process inherits no listener and no other child's pipe end (an inherited write end
/// keeps its reader from ever seeing the end of the stream). glibc 2.34 and later do it with
/// `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not import.
/// Returns 0, or ENOSYS where the C library has no such action (then only descriptors marked
/// close-on-exec stay out of the child).
int spawn_support_close_from(posix_spawn_file_actions_t *actions, int lowest);

#endif
