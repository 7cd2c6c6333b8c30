#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one writer of a file descriptor: lines are queued by any thread and written in order
/// by a dedicated thread, so lines never interleave and a slow reader never blocks the
/// threads that produce them.
public final class OutputWriter: MessageSink, @unchecked Sendable {
    private let descriptor: Int32
    private let lock = ConditionLock()
    private var queue: [UInt8] = []
    private var finishing = false
    private var broken = false
    private var thread: PosixThread?

    /// Starts a writer for `descriptor` (standard output by default).
    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
        // A reader that goes away must surface as EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        thread = PosixThread(name: "mcp-writer") { [unowned self] in self.drain() }
    }

    /// Queues one complete line.
    public func send(_ line: [UInt8]) {
        lock.withLock {
            guard !finishing, !broken else { return }
            let wasEmpty = queue.isEmpty
            queue.append(contentsOf: line)
            if wasEmpty { lock.signal() }
        }
    }

    /// Writes what is queued, then stops the thread. Lines sent afterwards are dropped.
    public func finish() {
        lock.withLock {
            finishing = true
            lock.signal()
        }
        thread?.join()
        thread = nil
    }

    private func drain() {
        while true {
            let batch: [UInt8]? = lock.withLock {
                while queue.isEmpty && !finishing { lock.wait() }
                if queue.isEmpty { return nil }
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            guard let batch else { return }
            if !writeAll(batch) {
                lock.withLock {
                    broken = true
                    queue.removeAll()
                }
                return
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }
}
