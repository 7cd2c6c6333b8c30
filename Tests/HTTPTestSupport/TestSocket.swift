import Dispatch
import Synchronization
public import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The port a test listener bound, once it did.
public final class PortBox: Sendable {
    private let port = Mutex(0)
    public init() {}
    public func set(_ value: Int) { port.withLock { $0 = value } }
    public var value: Int { port.withLock { $0 } }
}

/// A blocking loopback TCP client with a receive timeout (which only guards against a hang). Its
/// reads tell a close from silence: ``readUntilClosed(within:sourceLocation:)`` fails the test
/// when the server is still connected at the bound, rather than taking silence for a close.
public final class TestSocket: @unchecked Sendable {
    public let descriptor: Int32
    private var open = true

    public init(port: Int) throws {
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw SocketError(operation: "connect", code: errno)
        }
    }

    public struct SocketError: Error {
        public let operation: String
        public let code: Int32
    }

    public func write(_ text: String) throws {
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        let sent = text.utf8CString.withUnsafeBufferPointer { buffer in
            send(descriptor, buffer.baseAddress, buffer.count - 1, flags)
        }
        guard sent >= 0 else { throw SocketError(operation: "send", code: errno) }
    }

    /// What the server sends until `marker` has arrived (or it closes, or the timeout passes).
    public func blockingRead(until marker: String) -> String {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(marker) {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { break }
            received += chunk[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Whether the server has closed, waiting up to `milliseconds` for a sign.
    public func blockingIsClosed(waitingMilliseconds milliseconds: Int32) -> Bool {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) > 0 else { return false }
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        // End of stream, or a reset (closed with data unread on its side); bytes waiting are not a close.
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    /// How a connection stood when ``blockingDrain(withinMilliseconds:)`` returned.
    public enum StreamEnd: Sendable, Equatable {
        /// The server closed it: end of stream, or a reset.
        case closed
        /// Still open when the time was up.
        case open
    }

    /// Reads what the server sends until it closes the connection or `milliseconds` have passed,
    /// and says which: unlike ``blockingReadUntilClosed()``, a connection still open at the end
    /// is not taken for a closed one.
    public func blockingDrain(withinMilliseconds milliseconds: Int) -> (received: [UInt8], end: StreamEnd) {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return (received, .open) }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(1_000, (deadline - now) / 1_000_000 + 1)))
            if ready < 0 && errno != EINTR { return (received, .closed) }
            guard ready > 0 else { continue }
            let count = recv(descriptor, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                received += chunk[0..<count]
            } else if count == 0 {
                return (received, .closed)
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                return (received, .closed) // ECONNRESET: closed with data left unread on its side
            }
        }
    }

    public func shut() {
        if open { close(descriptor) }
        open = false
    }

    deinit { shut() }
}

/// The reads, waiting on a Dispatch thread: a test that blocked a thread of Swift's cooperative
/// pool (two on a 2-core machine) could starve the server it is waiting for, which answers on
/// the same pool.
extension TestSocket {
    /// Everything the server sends until it closes the connection, which must happen within
    /// `limit`: a connection still open then is recorded as a failed expectation at the caller
    /// (silence is not a close), and what arrived is returned all the same.
    public func readUntilClosed(
        within limit: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation
    ) async -> String {
        let (received, end) = await drain(withinMilliseconds: Self.milliseconds(limit))
        if end == .open {
            Issue.record("the server had not closed the connection after \(limit)", sourceLocation: sourceLocation)
        }
        return String(decoding: received, as: UTF8.self)
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// What the server sends until `marker` has arrived (or it closes, or the timeout passes).
    public func read(until marker: String) async -> String {
        await offPool { $0.blockingRead(until: marker) }
    }

    /// Whether the server has closed, waiting up to `milliseconds` for a sign.
    public func isClosed(waitingMilliseconds milliseconds: Int32) async -> Bool {
        await offPool { $0.blockingIsClosed(waitingMilliseconds: milliseconds) }
    }

    /// What the server sends until it closes or `milliseconds` pass, and which of the two.
    public func drain(withinMilliseconds milliseconds: Int) async -> (received: [UInt8], end: StreamEnd) {
        await offPool { $0.blockingDrain(withinMilliseconds: milliseconds) }
    }

    private func offPool<T: Sendable>(_ body: @escaping @Sendable (TestSocket) -> T) async -> T {
        await onOwnThread { body(self) }
    }
}
