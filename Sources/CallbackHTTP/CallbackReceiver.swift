import CoreMetrics
import Foundation
public import Hummingbird
public import Logging
import NIOCore
public import TwilioPayments
import Synchronization

/// Where authenticated status callbacks go, and the one that knows which path secrets belong
/// to a session (the receiver keeps no list of its own, so any replica can take any callback).
/// The payment flow implements it.
public protocol CallbackSink: Sendable {
    /// Whether `secret` belongs to a session, asked only before a callback is refused (one that
    /// would finish a session without naming it): the receiver answers 404 when not, and logs the
    /// refusal only when so. Throws when it cannot tell now (its store is away): the receiver
    /// answers 503 with `Retry-After`.
    func knows(secret: String) async throws -> Bool
    /// Takes one authenticated callback for the session whose path secret is `secret`.
    /// Returns `false` if no such session exists (the receiver answers 404). Throws when the
    /// callback could not be kept: the receiver answers 503, so the sender does not take it as
    /// delivered.
    func deliver(secret: String, callback: PaymentStatusCallback) async throws -> Bool
}

/// How the receiver checks what arrives.
public struct CallbackReceiverConfiguration: Sendable {
    /// The path every callback URL starts with.
    public var pathPrefix: String
    /// The account's Auth Token. When set, every callback must carry a valid
    /// `X-Twilio-Signature`; without it the per-session path secret is the only defence.
    public var authToken: Secret?
    /// The largest accepted body.
    public var maximumBodyBytes: Int
    /// Told of refused callbacks (a bad signature, an unknown secret, a malformed or oversized
    /// body), after the refusal is answered: a host's audit trail. At most ten a second reach it;
    /// the next one to reach it counts those left out (``RefusedCallback/unreported``).
    public var onRefusal: (@Sendable (RefusedCallback) async -> Void)?

    public init(
        pathPrefix: String = "/twilio/payment-callbacks", authToken: Secret? = nil, maximumBodyBytes: Int = 64 * 1024,
        onRefusal: (@Sendable (RefusedCallback) async -> Void)? = nil
    ) {
        self.pathPrefix = "/" + pathPrefix.split(separator: "/").joined(separator: "/")
        self.authToken = authToken
        self.maximumBodyBytes = maximumBodyBytes
        self.onRefusal = onRefusal
    }
}

/// The routes and checks that receive Twilio's payment status callbacks, for a host's own
/// Hummingbird application (``routes(context:)``); it runs no server of its own.
///
/// Each payment session gets its own URL, `<public base>/<prefix>/<secret>`, from
/// ``callbackURL(secret:)``; a callback is accepted only if its sink knows the secret (the
/// session store finds sessions by the secret's hash) and, when an Auth Token is configured, its `X-Twilio-Signature`
/// is valid for the *public* URL Twilio called. Rejections: bad or missing signature 403,
/// unknown secret 404, wrong method 405, wrong content type 415, body over the limit 413,
/// malformed body 400, a `Result` without the SIDs Twilio sends (``PaymentStatusCallback/refusal``)
/// 400 with the reason as its body. Nothing from a rejected request reaches the sink. Access logs
/// carry no bodies and no secrets. The listener that serves the routes faces the internet
/// (through a tunnel or a proxy): bound it with `HTTPServerBuilder.guardedHTTP1(limits:logger:)`.
public final class CallbackReceiver: Sendable {
    public let configuration: CallbackReceiverConfiguration
    private let sink: any CallbackSink
    private let logger: Logger
    private let signature: WebhookSignature?
    /// The public base URL, shared with whoever builds callback URLs (a payment flow).
    public let publicBase: PublicBaseURL
    /// Bounds what reaches ``CallbackReceiverConfiguration/onRefusal``.
    let refusalReports = ReportBudget(perSecond: 10)

    /// A receiver handing callbacks to `sink`, checking signatures against the URL in
    /// `publicBase` (its one owner; pass the same one to what builds the callback URLs).
    public init(
        configuration: CallbackReceiverConfiguration, sink: any CallbackSink,
        publicBase: PublicBaseURL = PublicBaseURL(),
        logger: Logger = Logger(label: "agent-payments.callbacks")
    ) {
        self.configuration = configuration
        self.sink = sink
        self.publicBase = publicBase
        self.logger = logger
        self.signature = configuration.authToken.map(WebhookSignature.init(authToken:))
    }

    /// The public base URL (scheme, host, optional port) Twilio uses to reach this server.
    public var publicBaseURL: String? { publicBase.value }

    /// Sets the public base URL, such as `https://abc.ngrok.app` or, for a simulator on
    /// loopback, `http://127.0.0.1:<port>`.
    public func setPublicBaseURL(_ url: String) {
        publicBase.set(url)
    }

    /// The URL Twilio should call for the session with `secret`.
    public func callbackURL(secret: String) throws(CallbackURLError) -> String {
        guard let base = publicBaseURL else { throw .noPublicURLYet }
        return Self.callbackURL(base: base, pathPrefix: configuration.pathPrefix, secret: secret)
    }

    /// `base` + `pathPrefix` + `/` + `secret`: every callback URL's shape.
    public static func callbackURL(base: String, pathPrefix: String, secret: String) -> String {
        base + pathPrefix + "/" + secret
    }

    // MARK: Routes

    /// The callback routes (`POST <prefix>/:secret`, and 405 for other methods there), with
    /// their access log, for a host's router: `router.addRoutes(receiver.routes())`.
    public func routes<Context: RequestContext>(
        context: Context.Type = BasicRequestContext.self
    ) -> RouteCollection<
        Context
    > {
        let routes = RouteCollection(context: Context.self)
        let group = routes.group(RouterPath(configuration.pathPrefix))
            .add(middleware: AccessLogMiddleware<Context>(logger: logger, pathPrefix: configuration.pathPrefix))
        group.on(":secret", method: .post) { [self] request, context in
            let response = try await receive(request, secret: context.parameters.get("secret"))
            let status = Int(response.status.code)
            // 503 is this server's trouble, not a refusal of the sender.
            if status >= 400, status != 503, let onRefusal = configuration.onRefusal,
                let unreported = refusalReports.admit()
            {
                let address = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress
                await onRefusal(
                    RefusedCallback(
                        reason: AccessLogMiddleware<Context>.result(of: status), status: status, origin: address,
                        unreported: unreported))
            }
            return response
        }
        for method in [HTTPRequest.Method.get, .put, .delete, .patch, .head] {
            group.on(":secret", method: method) { _, _ -> Response in
                Response(status: .methodNotAllowed, headers: [.allow: "POST"])
            }
        }
        return routes
    }

    private func receive(_ request: Request, secret: String?) async throws -> Response {
        guard let secret else { return Response(status: .notFound) }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            return Response(status: .unsupportedMediaType)
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maximumBodyBytes {
            return Response(status: .contentTooLarge)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maximumBodyBytes)
        } catch {
            return Response(status: .contentTooLarge)
        }
        let body = String(buffer: buffer)
        guard let fields = FormEncoding.decode(body) else { return Response(status: .badRequest) }

        // With an Auth Token the signature is checked first, so a caller without it learns
        // nothing, not even whether a secret exists.
        if let signature {
            guard let header = request.headers.first(where: { $0.name.canonicalName == "x-twilio-signature" })?.value,
                let base = publicBaseURL,
                signature.isValid(signature: header, url: base + request.uri.description, parameters: fields)
            else {
                return Response(status: .forbidden)
            }
        }
        let callback = PaymentStatusCallback(fields: fields)
        if let refusal = callback.refusal {
            // Rare, so only here is the sink asked first (an ordinary callback costs the store one
            // read, in the delivery): refused and logged only for a secret that exists, so a
            // stranger cannot fill the log.
            do {
                guard try await sink.knows(secret: secret) else { return Response(status: .notFound) }
            } catch {
                return unavailable(error)
            }
            logger.warning(
                "callback refused: it would finish the session without naming it", metadata: ["reason": "\(refusal)"])
            return Response(
                status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: refusal.description + "\n")))
        }
        do {
            guard try await sink.deliver(secret: secret, callback: callback) else { return Response(status: .notFound) }
        } catch {
            return unavailable(error)
        }
        let unrecognized = callback.unrecognizedValues
        if !unrecognized.isEmpty {
            // Kept and applied as far as understood (and only for a session that exists, so a
            // stranger cannot fill the log); values are Twilio names, never card data.
            logger.warning(
                "callback carries values this server does not know",
                metadata: [
                    "payment.sid": "\(callback.paymentSID?.rawValue ?? "-")",
                    "unrecognized": "\(unrecognized.joined(separator: "; "))",
                ])
        }
        return Response(status: .noContent)
    }

    /// 503 with `Retry-After: 1`: the sink could not keep the callback now (its store is away);
    /// nothing was applied, and a retry is welcome.
    private func unavailable(_ error: any Error) -> Response {
        logger.warning(
            "callback not applied: the session store is unavailable; answered 503", metadata: ["reason": "\(error)"])
        return Response(status: .serviceUnavailable, headers: [.retryAfter: "1"])
    }
}

/// Why no callback URL could be given.
public enum CallbackURLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The receiver does not know its public URL yet (its listener, tunnel or host has not said).
    case noPublicURLYet

    public var description: String {
        switch self {
        case .noPublicURLYet: return "the callback server has no public URL yet"
        }
    }
}

/// One log line per request: method, path with the secret hidden, status and duration; and
/// each callback counted by its result (`agent_payments_callbacks_total`, its handling time in
/// `agent_payments_callback_duration_seconds`; swift-metrics, no backend chosen here).
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let pathPrefix: String

    /// A callback's result, by its status: the receiver answers each refusal with its own.
    static func result(of status: Int) -> String {
        switch status {
        case 200..<300: return "accepted"
        case 400: return "malformed"
        case 403: return "bad_signature"
        case 404: return "unknown_session"
        case 405: return "wrong_method"
        case 413: return "too_large"
        case 415: return "wrong_content_type"
        case 503: return "store_unavailable"
        default: return "other"
        }
    }

    static func count(_ status: Int, took: Duration) {
        Counter(label: "agent_payments_callbacks_total", dimensions: [("result", result(of: status))]).increment()
        CoreMetrics.Timer(label: "agent_payments_callback_duration_seconds")
            .recordNanoseconds(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let path = request.uri.path.hasPrefix(pathPrefix + "/") ? pathPrefix + "/<secret>" : request.uri.path
        do {
            let response = try await next(request, context)
            if path != request.uri.path { Self.count(response.status.code, took: ContinuousClock.now - start) }
            logger.debug(
                "callback request",
                metadata: [
                    "http.method": "\(request.method)", "http.path": "\(path)",
                    "http.status": "\(response.status.code)",
                    "duration.ms": "\((ContinuousClock.now - start).components.attoseconds / 1_000_000_000_000_000)",
                ])
            return response
        } catch {
            if path != request.uri.path {
                Self.count((error as? HTTPError)?.status.code ?? 500, took: ContinuousClock.now - start)
            }
            logger.debug(
                "callback request",
                metadata: ["http.method": "\(request.method)", "http.path": "\(path)", "http.status": "error"])
            throw error
        }
    }
}

/// The public base URL Twilio reaches the callback routes at (scheme, host, optional port; no
/// trailing slash): set once it is known (configured, a tunnel's, a loopback port's), read by
/// the receiver to check signatures and by the flow to build callback URLs. One owner of it,
/// shared by both.
public final class PublicBaseURL: Sendable {
    private let url: Mutex<String?>

    /// Unknown yet, or `url`.
    public init(_ url: String? = nil) {
        self.url = Mutex(url.map(Self.trimmed))
    }

    /// The URL, once known.
    public var value: String? { url.withLock { $0 } }

    /// Sets (or replaces) the URL.
    public func set(_ url: String) {
        self.url.withLock { $0 = Self.trimmed(url) }
    }

    /// Sets the URL if none is known yet; returns whether it did.
    @discardableResult
    public func setIfUnset(_ url: String) -> Bool {
        self.url.withLock { current in
            guard current == nil else { return false }
            current = Self.trimmed(url)
            return true
        }
    }

    private static func trimmed(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
