import ConcurrencyHook
import NIOCore
import NIOPosix

/// NIO's event loops as Swift's global executor, so that an HTTP request's handlers, the engine
/// and the flow run on the event loop that reads and writes its connection instead of hopping to
/// Swift's cooperative pool and back (two thread wake-ups each way per request).
///
/// NIO offers this itself (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`),
/// but finds the runtime's hook with `dlsym`, and a statically linked Swift runtime (how the
/// server's executables are linked, Package.swift) hides it: NIO's attempt returns `false` there.
/// This tries NIO's way first and otherwise installs the same hook through a symbol reference
/// resolved at link time (the `ConcurrencyHook` C target). Call it once, from the main thread,
/// before any task exists.
public enum EventLoopExecutor {
    /// Whether NIO's singleton event loops now run every task that has no executor of its own.
    public static func install() -> Bool {
        if NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() { return true }
        return agent_payments_install_enqueue_global_hook { job in
            // `any()` is sticky: on one of the group's loops, that loop (no thread switch).
            MultiThreadedEventLoopGroup.singleton.any().executor.enqueue(
                ExecutorJob(unsafeBitCast(job, to: UnownedJob.self)))
        }
    }

    /// Whether the caller runs on one of NIO's event loops (with ``install()`` in effect, every
    /// task does).
    public static var isCurrentlyOnEventLoop: Bool { MultiThreadedEventLoopGroup.currentEventLoop != nil }
}
