public import Foundation
import Synchronization
#if canImport(FoundationNetworking)
internal import FoundationNetworking
#endif

/// One HTTP exchange, as the client needs it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: URL
    public var headers: [(String, String)]
    public var body: Data?
    public var timeout: Duration

    public init(method: String, url: URL, headers: [(String, String)], body: Data?, timeout: Duration) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// An HTTP answer.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header values by lower-cased name.
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A failure to get any HTTP answer at all.
public struct TransportFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// Whether trying again may help (connection refused or lost, timeout, DNS).
    public var isRetryable: Bool

    public init(_ description: String, isRetryable: Bool) {
        self.description = description
        self.isRetryable = isRetryable
    }
}

/// Sends HTTP requests. The default is URLSession over the system libcurl; tests and other
/// hosts may supply their own.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse
}

/// URLSession (FoundationNetworking, libcurl on Linux) as an ``HTTPTransport``. The session is
/// made on the first request, so a transport that is configured but never used costs nothing
/// (on Linux, a URLSession initialises libcurl).
public final class URLSessionTransport: HTTPTransport {
    private let made = Mutex<URLSession?>(nil)

    public init() {}

    private var session: URLSession {
        made.withLock { made in
            if let session = made { return session }
            let configuration = URLSessionConfiguration.ephemeral
            configuration.httpCookieStorage = nil
            configuration.urlCache = nil
            configuration.httpShouldSetCookies = false
            let session = URLSession(configuration: configuration)
            made = session
            return session
        }
    }

    deinit {
        made.withLock { $0 }?.finishTasksAndInvalidate()
    }

    public func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
        var urlRequest = URLRequest(url: request.url)
        urlRequest.httpMethod = request.method
        urlRequest.httpBody = request.body
        let components = request.timeout.components
        urlRequest.timeoutInterval = Double(components.seconds) + Double(components.attoseconds) / 1e18
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        do {
            let (data, response) = try await Self.load(urlRequest, in: session)
            guard let http = response as? HTTPURLResponse else {
                throw TransportFailure("the answer was not HTTP", isRetryable: false)
            }
            var headers: [String: String] = [:]
            for (name, value) in http.allHeaderFields {
                if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
            }
            return HTTPResponse(status: http.statusCode, headers: headers, body: data)
        } catch let failure as TransportFailure {
            throw failure
        } catch let error as URLError {
            let retryable: Set<URLError.Code> = [
                .timedOut, .cannotConnectToHost, .networkConnectionLost, .cannotFindHost, .dnsLookupFailed,
                .notConnectedToInternet, .badServerResponse,
            ]
            throw TransportFailure(
                "\(Self.describe(error.code)) (\(request.url.host ?? "?"))", isRetryable: retryable.contains(error.code)
            )
        } catch {
            throw TransportFailure("request failed: \(type(of: error))", isRetryable: false)
        }
    }

    /// `session.data(for:)` without its way of cancelling. FoundationNetworking's cancels the
    /// task with a `queue.sync` on the session's queue from inside Swift's cancellation handler,
    /// which holds the cancelled task's status lock, while that queue may be finishing the same
    /// request and resuming its continuation, which needs the lock: a deadlock, seen when a task
    /// group cancelled a request in flight (the simulator's callers at a graceful shutdown; the
    /// stop of `--simulate` stalled, and once a whole test run). Here the handler only hands the
    /// cancel to another queue.
    private static func load(_ request: URLRequest, in session: URLSession) async throws -> (Data, URLResponse) {
        let running = RunningTask()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let task = session.dataTask(with: request) { data, response, error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let data, let response {
                        continuation.resume(returning: (data, response))
                    } else {
                        continuation.resume(throwing: URLError(.badServerResponse))
                    }
                }
                running.start(task)
            }
        } onCancel: {
            DispatchQueue.global().async { running.cancel() }
        }
    }

    /// A data task that may be cancelled from another thread, before or after it starts.
    private final class RunningTask: @unchecked Sendable {
        private let lock = NSLock()
        private var task: URLSessionDataTask?
        private var cancelled = false

        func start(_ task: URLSessionDataTask) {
            let cancelled = lock.withLock {
                self.task = task
                return self.cancelled
            }
            task.resume()
            if cancelled { task.cancel() }
        }

        func cancel() {
            let task = lock.withLock {
                cancelled = true
                return self.task
            }
            task?.cancel()
        }
    }

    // URLError's own description can carry the full URL; name the failure instead.
    private static func describe(_ code: URLError.Code) -> String {
        switch code {
        case .timedOut: return "the request timed out"
        case .cannotConnectToHost: return "the connection was refused"
        case .networkConnectionLost: return "the connection was lost"
        case .cannotFindHost, .dnsLookupFailed: return "the host name could not be resolved"
        case .notConnectedToInternet: return "there is no network connection"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate:
            return "the TLS connection failed"
        default: return "network error \(code.rawValue)"
        }
    }
}
