#ifndef AGENT_PAYMENTS_CONCURRENCY_HOOK_H
#define AGENT_PAYMENTS_CONCURRENCY_HOOK_H

#include <stdbool.h>

/// Where a job the Swift runtime would hand its global executor goes instead (C calling
/// convention; `job` is the runtime's `Job *`, an `UnownedJob` in Swift).
typedef void (*agent_payments_enqueue_job)(void *job);

/// Installs `enqueue` as the Swift runtime's `swift_task_enqueueGlobal_hook` if no hook is set
/// yet; returns whether it did. The hook is referenced at link time, so it is found in a
/// statically linked runtime too, where it is hidden from `dlsym` (which is how NIO looks for it).
bool agent_payments_install_enqueue_global_hook(agent_payments_enqueue_job enqueue);

#endif
