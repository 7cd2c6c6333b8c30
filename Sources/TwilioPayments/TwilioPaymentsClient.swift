import CoreMetrics
import Tracing
public import Foundation

/// The operations of Twilio's Payments API that a payment flow needs. ``TwilioPaymentsClient``
/// is the real one; tests and other hosts may substitute their own.
///
/// Each call names its idempotency key: one key per logical operation, re-sent unchanged on
/// every retry of it, so Twilio never performs it twice.
public protocol TwilioPaymentsAPI: Sendable {
    /// Starts a payment session on a call (`POST …/Calls/{CallSid}/Payments.json`, 201).
    func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource
    /// Captures an item, completes or cancels (`POST …/Payments/{Sid}.json`, 202).
    func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource
    /// Fetches a call, to learn whether it is still in progress (`GET …/Calls/{CallSid}.json`).
    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource
}

/// The Twilio Payments REST client: Basic auth with an API key, form-encoded requests, typed
/// responses, Twilio's errors explained, and retries that keep the idempotency key.
///
/// ```swift
/// let client = try TwilioPaymentsClient(credentials: credentials)
/// let payment = try await client.createPayment(callSID: call, options: PaymentSessionOptions(chargeAmount: "9.99"),
///                                              idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey(),
///                                              statusCallback: "https://example.com/callbacks/s3cr3t")
/// ```
public struct TwilioPaymentsClient: TwilioPaymentsAPI {
    /// Twilio's default API host (US1). Other regions' hosts come from ``TwilioEndpoint``
    /// (`TwilioEndpoint(region: .ie1).baseURL`); stand-ins such as TwilioSimulator are
    /// configured through `baseURL`.
    public static let defaultBaseURL = URL(string: "https://api.twilio.com")!

    public let credentials: TwilioCredentials
    public let baseURL: URL
    public let retryPolicy: RetryPolicy
    /// How long one HTTP attempt may take.
    public let requestTimeout: Duration
    private let transport: any HTTPTransport
    /// The time the retries measure their budget and wait in.
    private let retryClock: any RetryClock
    private let authorization: String

    /// Why a configuration was refused.
    public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The base URL is not an absolute http(s) URL.
        case invalidBaseURL(String)

        public var description: String {
            switch self {
            case .invalidBaseURL(let url):
                return "the Twilio API base URL must be an absolute http(s) URL, got \"\(url)\""
            }
        }
    }

    public init(
        credentials: TwilioCredentials, baseURL: URL = TwilioPaymentsClient.defaultBaseURL,
        retryPolicy: RetryPolicy = RetryPolicy(), requestTimeout: Duration = .seconds(15),
        transport: any HTTPTransport = URLSessionTransport(), retryClock: any RetryClock = ContinuousRetryClock()
    ) throws(ConfigurationError) {
        guard let scheme = baseURL.scheme?.lowercased(), scheme == "https" || scheme == "http", baseURL.host != nil
        else {
            throw .invalidBaseURL(baseURL.absoluteString)
        }
        self.credentials = credentials
        self.baseURL = baseURL
        self.retryPolicy = retryPolicy
        self.requestTimeout = requestTimeout
        self.transport = transport
        self.retryClock = retryClock
        let pair = "\(credentials.apiKeySID.rawValue):\(credentials.apiSecret.revealed)"
        self.authorization = "Basic " + Data(pair.utf8).base64EncodedString()
    }

    /// A fresh idempotency key: 128 random bits in hex.
    public static func makeIdempotencyKey() -> String {
        Hex.random()
    }

    // MARK: Operations

    public func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        var problems = options.validate()
        problems += Self.checkCommon(idempotencyKey: idempotencyKey, statusCallback: statusCallback)
        if !problems.isEmpty { throw .invalidRequest(problems) }
        let fields = [("IdempotencyKey", idempotencyKey), ("StatusCallback", statusCallback)] + options.formFields()
        let response = try await perform(
            "create_payment", method: "POST", path: "Calls/\(callSID)/Payments.json", form: fields)
        return try PaymentResource(try decode(PaymentResource.Wire.self, from: response), status: response.status)
    }

    public func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        let problems = Self.checkCommon(idempotencyKey: idempotencyKey, statusCallback: statusCallback)
        if !problems.isEmpty { throw .invalidRequest(problems) }
        let fields = [("IdempotencyKey", idempotencyKey), ("StatusCallback", statusCallback)] + update.formFields()
        let response = try await perform(
            "update_payment", method: "POST", path: "Calls/\(callSID)/Payments/\(paymentSID).json", form: fields)
        return try PaymentResource(try decode(PaymentResource.Wire.self, from: response), status: response.status)
    }

    public func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        let response = try await perform("fetch_call", method: "GET", path: "Calls/\(callSID).json", form: nil)
        let call = try decode(CallResource.Wire.self, from: response)
        guard let sid = call.sid.flatMap(CallSID.init) else {
            throw .invalidResponse(status: response.status, detail: "the call resource has no valid sid")
        }
        return CallResource(
            sid: sid, rawStatus: call.status, parentCallSID: call.parent_call_sid.flatMap(CallSID.init),
            direction: call.direction)
    }

    // MARK: Plumbing

    private static func checkCommon(idempotencyKey: String, statusCallback: String) -> [String] {
        var problems: [String] = []
        if idempotencyKey.isEmpty { problems.append("an idempotency key is required") }
        if idempotencyKey.utf8.count > 128 { problems.append("the idempotency key is longer than 128 characters") }
        if let url = URL(string: statusCallback), let scheme = url.scheme?.lowercased(),
            scheme == "https" || scheme == "http",
            url.host != nil
        {
            // An absolute http(s) URL, as Twilio requires.
        } else {
            problems.append("the status callback must be an absolute http(s) URL")
        }
        return problems
    }

    /// Sends one logical operation, retrying what is worth retrying with the same body (and so
    /// the same idempotency key) within the policy's attempt and time budget. Each attempt is
    /// counted by `operation` and status (`agent_payments_twilio_requests_total`, its latency in
    /// `agent_payments_twilio_request_duration_seconds`; swift-metrics, no backend chosen here).
    func perform(
        _ operation: String, method: String, path: String, form: [(String, String)]?
    ) async throws(TwilioError) -> HTTPResponse {
        let url = baseURL.appendingPathComponent("2010-04-01/Accounts/\(credentials.accountSID)/\(path)")
        var headers = [
            ("Authorization", authorization), ("Accept", "application/json"), ("User-Agent", "agent-payments/0.1"),
        ]
        var body: Data?
        if let form {
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            body = Data(FormEncoding.encode(form).utf8)
        }
        var request = HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: requestTimeout)
        let clock = ContinuousClock()
        let deadline = retryClock.elapsed + retryPolicy.totalBudget
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            attempt += 1
            // No attempt may outlast the budget: the last one gets what is left of it (at least
            // a millisecond: a wait that overslept the deadline must not leave a timeout of zero
            // or less, which URLSession would read as its own default).
            request.timeout = max(.milliseconds(1), min(requestTimeout, deadline - retryClock.elapsed))
            let outcome: Result<HTTPResponse, TransportFailure>
            let sent = clock.now
            // A client span per attempt, a child of whatever the caller traces (a tool call, a
            // callback): its operation and status, never the URL (account and call SIDs) or body.
            let span = startSpan("twilio \(operation)", ofKind: .client)
            span.attributes["http.request.method"] = method
            span.attributes["twilio.operation"] = operation
            if attempt > 1 { span.attributes["http.request.resend_count"] = attempt - 1 }
            do {
                outcome = .success(try await transport.send(request))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let response):
                span.attributes["http.response.status_code"] = response.status
                if response.status >= 400 { span.setStatus(SpanStatus(code: .error)) }
            case .failure:
                span.attributes["error.type"] = "transport_error"
                span.setStatus(SpanStatus(code: .error))
            }
            span.end()
            Self.count(operation, outcome, took: clock.now - sent)
            let retryAfter: Double?
            switch outcome {
            case .success(let response):
                guard RetryPolicy.isRetryable(status: response.status) else { return response }
                retryAfter = response.headers["retry-after"].flatMap { RetryPolicy.retryAfterSeconds($0, now: Date()) }
                if attempt >= retryPolicy.maximumAttempts {
                    throw .api(givingUp(operation, on: response, attempts: attempt))
                }
            case .failure(let failure):
                if !failure.isRetryable || attempt >= retryPolicy.maximumAttempts {
                    throw .transport(naming(failure), attempts: attempt)
                }
                retryAfter = nil
            }
            let wait = retryPolicy.delay(afterAttempt: attempt, retryAfterSeconds: retryAfter, using: &generator)
            guard retryClock.elapsed + wait < deadline else {
                switch outcome {
                case .success(let response): throw .api(givingUp(operation, on: response, attempts: attempt))
                case .failure(let failure):
                    throw .transport(naming(failure) + " (retry budget spent)", attempts: attempt)
                }
            }
            do {
                try await retryClock.sleep(for: wait)
            } catch {
                throw .transport("cancelled while waiting to retry", attempts: attempt)
            }
        }
    }

    /// One attempt's count and latency; the status is the HTTP code, or `transport_error`.
    private static func count(_ operation: String, _ outcome: Result<HTTPResponse, TransportFailure>, took: Duration) {
        let status: String
        switch outcome {
        case .success(let response): status = String(response.status)
        case .failure: status = "transport_error"
        }
        Counter(
            label: "agent_payments_twilio_requests_total", dimensions: [("operation", operation), ("status", status)]
        ).increment()
        CoreMetrics.Timer(
            label: "agent_payments_twilio_request_duration_seconds", dimensions: [("operation", operation)]
        )
        .recordNanoseconds(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
    }

    /// A successful response's body as `T`; Twilio's error for any other status.
    func decode<T: Decodable>(_ type: T.Type, from response: HTTPResponse) throws(TwilioError) -> T {
        guard (200..<300).contains(response.status) else { throw .api(answeredError(from: response)) }
        do {
            return try JSONDecoder().decode(T.self, from: response.body)
        } catch {
            throw .invalidResponse(status: response.status, detail: "the body is not the JSON object Twilio sends")
        }
    }

    /// Twilio's error body in either shape: legacy (`code`, `message`, `more_info`, `status`)
    /// or RFC 9457 problem details (`type`, `title`, `detail`, `status`, `code`). `code` may be
    /// a number or a numeric string.
    struct ErrorWire: Decodable {
        var code: Int?
        var message: String?
        var more_info: String?
        var status: Int?
        var detail: String?
        var title: String?
        var type: String?

        enum CodingKeys: String, CodingKey { case code, message, more_info, status, detail, title, type }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            code =
                (try? container.decodeIfPresent(Int.self, forKey: .code))
                ?? (try? container.decodeIfPresent(String.self, forKey: .code)).flatMap { $0.flatMap(Int.init) }
            message = try? container.decodeIfPresent(String.self, forKey: .message)
            more_info = try? container.decodeIfPresent(String.self, forKey: .more_info)
            status = try? container.decodeIfPresent(Int.self, forKey: .status)
            detail = try? container.decodeIfPresent(String.self, forKey: .detail)
            title = try? container.decodeIfPresent(String.self, forKey: .title)
            type = try? container.decodeIfPresent(String.self, forKey: .type)
        }
    }

    /// Twilio's error in `response`, naming the host that answered.
    private func answeredError(from response: HTTPResponse) -> TwilioAPIError {
        var error = Self.apiError(from: response)
        error.host = baseURL.host
        return error
    }

    /// The error of a retryable answer the retries could not get past: Twilio's throttling is
    /// counted (`agent_payments_twilio_throttled_total`) and says how many attempts it refused.
    private func givingUp(_ operation: String, on response: HTTPResponse, attempts: Int) -> TwilioAPIError {
        var error = answeredError(from: response)
        if error.isThrottling {
            error.attempts = attempts
            Counter(label: "agent_payments_twilio_throttled_total", dimensions: [("operation", operation)]).increment()
        }
        return error
    }

    /// A transport failure's description, naming the host the request was meant for unless it
    /// already does.
    private func naming(_ failure: TransportFailure) -> String {
        let host = baseURL.host ?? baseURL.absoluteString
        return failure.description.contains(host) ? failure.description : failure.description + " (host \(host))"
    }

    /// Decodes Twilio's legacy error JSON (`code`, `message`, `more_info`, `status`) or RFC 9457
    /// problem details (`type`, `title`, `detail`, `status`, `code`).
    static func apiError(from response: HTTPResponse) -> TwilioAPIError {
        let body = try? JSONDecoder().decode(ErrorWire.self, from: response.body)
        let code = body?.code
        let message = body?.message ?? body?.detail ?? body?.title ?? HTTPStatusText.reason(response.status)
        let moreInfo = body?.more_info ?? body?.type.flatMap { $0 == "about:blank" ? nil : $0 }
        let status = body?.status ?? response.status
        return TwilioAPIError(
            httpStatus: status, code: code ?? (response.status == 429 ? 20429 : nil), message: message,
            moreInfo: moreInfo)
    }
}

/// Reason phrases for bodies that carry none.
enum HTTPStatusText {
    static func reason(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "HTTP \(status)"
        }
    }
}
