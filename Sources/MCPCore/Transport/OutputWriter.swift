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
    /// Whether the writer thread is writing a batch outside the lock.
    private var writing = false
    private var thread: PosixThread?

    /// Starts a writer for `descriptor` (standard output by default).
    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
        // A reader that goes away must surface as EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        thread = PosixThread(name: "mcp-writer") { [unowned self] in self.drain() }
    }

    /// Queues one complete line.
    ///
    /// Fast path: when nothing is queued or being written and the descriptor can take the
    /// whole line without blocking (at most `PIPE_BUF` bytes, which a pipe writes atomically,
    /// and `poll` reports room for), the line is written directly, saving the writer thread's
    /// wake-up. Everything else goes through the queue, so order is always kept.
    public func send(_ line: [UInt8]) {
        lock.withLock {
            guard !finishing, !broken else { return }
            if queue.isEmpty, !writing, line.count <= 4096, canWriteWithoutBlocking() {
                let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
                if written == line.count { return }
                if written < 0 && errno != EAGAIN && errno != EINTR {
                    broken = true
                    return
                }
                queue.append(contentsOf: line[max(0, written)...])
                lock.signal()
                return
            }
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
                writing = true
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            guard let batch else { return }
            let succeeded = writeAll(batch)
            lock.withLock {
                writing = false
                if !succeeded {
                    broken = true
                    queue.removeAll()
                }
            }
            if !succeeded { return }
        }
    }

    private func canWriteWithoutBlocking() -> Bool {
        var descriptorPoll = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        return poll(&descriptorPoll, 1, 0) == 1 && descriptorPoll.revents & Int16(POLLOUT) != 0
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
