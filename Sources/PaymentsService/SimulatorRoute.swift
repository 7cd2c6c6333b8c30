import Foundation
import Synchronization
import TwilioPayments

/// The Twilio client's transport to the in-process simulator: sends each request to the port
/// the simulator listens on, once it does. Before then a request fails retryably ("still
/// starting"), so the client retries it within its budget; after the simulator failed to
/// start, it fails for good with the reason.
final class SimulatorRoute: HTTPTransport {
    /// The base URL the client is made with when the simulator plays no particular host; only
    /// its path survives the route (its host travels as `X-Forwarded-Host`).
    static let placeholder = URL(string: "http://twilio-simulator.invalid")!

    private enum State {
        case starting
        case listening(Int)
        case failed(String)
    }
    private let state = Mutex(State.starting)
    private let inner: any HTTPTransport

    init(inner: any HTTPTransport = URLSessionTransport()) {
        self.inner = inner
    }

    /// The simulator listens on `port`.
    func listening(on port: Int) {
        state.withLock { $0 = .listening(port) }
    }

    /// The simulator will not listen.
    func failed(_ reason: String) {
        state.withLock { $0 = .failed(reason) }
    }

    func send(_ request: HTTPRequest) async throws(TransportFailure) -> HTTPResponse {
        let port: Int
        switch state.withLock({ $0 }) {
        case .starting: throw TransportFailure("the built-in Twilio simulator is still starting", isRetryable: true)
        case .failed(let reason):
            throw TransportFailure("the built-in Twilio simulator could not start: \(reason)", isRetryable: false)
        case .listening(let bound): port = bound
        }
        guard var parts = URLComponents(url: request.url, resolvingAgainstBaseURL: false) else {
            throw TransportFailure("not a URL: \(request.url)", isRetryable: false)
        }
        let addressed = parts.host
        parts.scheme = "http"
        parts.host = "127.0.0.1"
        parts.port = port
        guard let routed = parts.url else { throw TransportFailure("not a URL: \(request.url)", isRetryable: false) }
        var request = request
        request.url = routed
        // As a proxy does: the simulator checks the host the request was meant for.
        if let addressed { request.headers.append(("X-Forwarded-Host", addressed)) }
        return try await inner.send(request)
    }
}
