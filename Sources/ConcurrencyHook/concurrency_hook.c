#include "concurrency_hook.h"

#include <stddef.h>

// The Swift runtime's hook (swift/Runtime/Concurrency.h): a Swift-convention function taking the
// job and the runtime's own enqueue, which this hook never calls.
typedef __attribute__((swiftcall)) void (*swift_enqueue_original)(void *job);
typedef __attribute__((swiftcall)) void (*swift_enqueue_global_hook)(void *job, swift_enqueue_original original);
extern swift_enqueue_global_hook swift_task_enqueueGlobal_hook;

static agent_payments_enqueue_job installed;

static __attribute__((swiftcall)) void agent_payments_enqueue_global(void *job, swift_enqueue_original original) {
    (void)original;
    installed(job);
}

bool agent_payments_install_enqueue_global_hook(agent_payments_enqueue_job enqueue) {
    if (enqueue == NULL) return false;
    installed = enqueue;
    swift_enqueue_global_hook expected = NULL;
    return __atomic_compare_exchange_n(
        &swift_task_enqueueGlobal_hook, &expected, agent_payments_enqueue_global, false, __ATOMIC_SEQ_CST,
        __ATOMIC_SEQ_CST);
}
