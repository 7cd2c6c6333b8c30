import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP/1.1 server on 127.0.0.1 that answers from a script, records every request, and
/// can drop a connection on purpose: the stand-in Twilio that fails for the retry tests.
final class LoopbackHTTPServer: Sendable {
    enum Action: Sendable {
        case respond(status: Int, headers: [String: String] = [:], body: String)
        /// Close the connection without answering.
        case drop
    }

    struct RecordedRequest: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String

        var form: [String: String] {
            Dictionary((TwilioFormPairs.decode(body)), uniquingKeysWith: { _, last in last })
        }
    }

    let port: UInt16
    private let socketDescriptor: Int32
    private let state = Mutex<(script: [Action], fallback: Action, requests: [RecordedRequest])>(([], .drop, []))

    init(script: [Action], fallback: Action = .respond(status: 500, body: "{}")) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        socketDescriptor = descriptor
        state.withLock { $0 = (script, fallback, []) }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit {
        shutdown(socketDescriptor, Int32(SHUT_RDWR))
        close(socketDescriptor)
    }

    var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

    var requests: [RecordedRequest] { state.withLock { $0.requests } }

    private func acceptLoop() {
        while true {
            let client = accept(socketDescriptor, nil, nil)
            if client < 0 { return }
            handle(client)
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if headerEnd == nil, let range = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let head = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        contentLength = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
            }
            if let headerEnd, buffer.count - headerEnd >= contentLength { break }
            let count = read(client, &chunk, chunk.count)
            if count <= 0 { return }
            buffer += chunk[0..<count]
        }
        let head = String(decoding: buffer[..<(headerEnd! - 4)], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let requestLine = lines.first?.split(separator: " ") ?? []
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        let body = String(decoding: buffer[headerEnd!...], as: UTF8.self)
        let action = state.withLock { state -> Action in
            state.requests.append(
                RecordedRequest(
                    method: requestLine.count > 0 ? String(requestLine[0]) : "",
                    path: requestLine.count > 1 ? String(requestLine[1]) : "",
                    headers: headers, body: body))
            return state.script.isEmpty ? state.fallback : state.script.removeFirst()
        }
        switch action {
        case .drop:
            return
        case .respond(let status, let extra, let body):
            var response =
                "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
            for (name, value) in extra { response += "\(name): \(value)\r\n" }
            response += "\r\n" + body
            _ = Array(response.utf8).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        }
    }
}

/// Form decoding for recorded requests (the module's own decoder, reached through the public API).
enum TwilioFormPairs {
    static func decode(_ body: String) -> [(String, String)] {
        body.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func unescape(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            return (unescape(parts[0]), parts.count > 1 ? unescape(parts[1]) : "")
        }
    }
}
