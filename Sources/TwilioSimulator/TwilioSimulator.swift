import Foundation
public import Hummingbird
public import HTTPTypes
public import Logging
public import TwilioPayments
import Synchronization
public import ListenerGuard

/// A stand-in for api.twilio.com's Payments and Calls endpoints: what the tests, the demo and
/// the no-account mode run against, the way NIOEmbedded stands in for a network.
///
/// It enforces what Twilio enforces — Basic auth (20003), SID formats, the required
/// IdempotencyKey and StatusCallback, enum values, one session per call (64021), exactly one of
/// Capture or Status (64018), completion only when nothing is missing (64019), cancel is final,
/// a repeated IdempotencyKey replays the first answer without a second effect, throttling (429,
/// 20429, `Retry-After`) when asked to (``throttle(_:)``), creations held before or after their
/// effect (``holdCreates(_:count:)``) — and answers
/// with Twilio-shaped JSON. Each call has a simulated caller (``CallerScript``) whose keypresses
/// become real, signed HTTP callbacks: partial progress with masked digits, `Required`,
/// `ErrorType`, and the final `Result` with a token or confirmation code.
public final class TwilioSimulator: Sendable {
    /// How the simulator is set up.
    public struct Configuration: Sendable {
        public var credentials: TwilioCredentials
        /// The Auth Token that signs callbacks (the receiver validates with the same one).
        public var authToken: Secret
        /// Pay Connector names that exist; others get 64004.
        public var connectors: Set<String>
        /// Time between two simulated keypresses (zero in tests).
        public var digitPacing: Duration
        /// Whether a call SID never seen before counts as a live call with the default caller.
        public var acceptsUnknownCalls: Bool
        /// How callbacks are sent.
        public var callbackTransport: any HTTPTransport
        /// How many sent callbacks ``TwilioSimulator/sentCallbacks`` keeps (the most recent).
        public var callbackHistoryLimit: Int
        /// How many IdempotencyKeys are remembered for replay (the most recent); Twilio keeps
        /// them for a day.
        public var idempotencyHistoryLimit: Int
        /// How callbacks spell what Twilio's documentation leaves open, so tests can play every
        /// reading.
        public var callbackShape: CallbackShape
        /// Told of every payment session created, with its StatusCallback URL (a test harness's
        /// view of what Twilio knows).
        public var onPaymentCreated: (@Sendable (PaymentSID, CallSID, String) -> Void)?
        /// Told when a payment creation starts being held (``TwilioSimulator/holdCreates(_:count:)``).
        public var onCreateHeld: (@Sendable (CreateHold) -> Void)?
        /// Appended to every error message, as a hostile or careless stand-in might echo what it
        /// holds: lets tests plant secrets and card numbers where a client might repeat them.
        public var errorMessageSuffix: String?
        /// The bounds its listener keeps against slow and idle clients.
        public var limits: ListenerLimits = ListenerLimits()
        /// Whether every call is recorded from its start (one `in-progress` recording, as a
        /// contact centre that records its calls has): the Recordings endpoints then have
        /// something to pause, and ``TwilioSimulator/recordings(on:)`` tells whether any
        /// keypress was heard while one was running.
        public var recordsCalls = false
        /// The Twilio host it plays, such as `api.dublin.ie1.twilio.com` (``TwilioEndpoint/host``):
        /// a request addressed to another host (its `X-Forwarded-Host` when a route forwarded it,
        /// else its `Host`) is answered as Twilio answers for a call of another region, 404 with
        /// error 20404. `nil` answers every host. ``TwilioSimulator/requestHosts`` counts them.
        public var host: String?

        public init(
            credentials: TwilioCredentials, authToken: Secret, connectors: Set<String> = ["Default"],
            digitPacing: Duration = .zero, acceptsUnknownCalls: Bool = true,
            callbackTransport: any HTTPTransport = URLSessionTransport(), callbackHistoryLimit: Int = 10_000,
            idempotencyHistoryLimit: Int = 10_000, callbackShape: CallbackShape = CallbackShape()
        ) {
            self.callbackShape = callbackShape
            self.credentials = credentials
            self.authToken = authToken
            self.connectors = connectors
            self.digitPacing = digitPacing
            self.acceptsUnknownCalls = acceptsUnknownCalls
            self.callbackTransport = callbackTransport
            self.callbackHistoryLimit = callbackHistoryLimit
            self.idempotencyHistoryLimit = idempotencyHistoryLimit
        }

        /// Made-up credentials for running with no account at all.
        public static func offline(digitPacing: Duration = .milliseconds(120)) -> Configuration {
            func hex() -> String { Hex.random() }
            let credentials = TwilioCredentials(
                accountSID: AccountSID(validated: "AC" + hex()), apiKeySID: APIKeySID(validated: "SK" + hex()),
                apiSecret: Secret(hex()), authToken: Secret(hex()))
            return Configuration(credentials: credentials, authToken: credentials.authToken!, digitPacing: digitPacing)
        }
    }

    /// The shapes of a callback that Twilio's documentation does not pin down. The defaults are
    /// the most likely reading; each alternative is one the flow must also survive.
    public struct CallbackShape: Sendable, Equatable {
        /// What the callback sent when a capture is requested (before any keypress) says of
        /// `PartialResult`.
        public enum CaptureTimePartialResult: String, Sendable, CaseIterable {
            /// No `PartialResult` field at all.
            case absent
            /// `PartialResult=true`.
            case `true`
        }

        /// What the callback that completes an item says of `PartialResult`.
        public enum FinalPartialResult: String, Sendable, CaseIterable {
            /// `PartialResult=false`, as the documentation's flow describes.
            case `false`
            /// No `PartialResult`: only the value and the shorter `Required` tell the item is done.
            case absent
        }

        /// How `Required` lists the items still to collect.
        public enum RequiredStyle: String, Sendable, CaseIterable {
            /// `Required=payment-card-number,security-code`.
            case kebabComma = "kebab-comma"
            /// `Required=PaymentCardNumber,SecurityCode` (the spelling of Twilio's own example).
            case pascalComma = "pascal-comma"
            /// One `Required` field per item.
            case repeatedFields = "repeated-fields"
        }

        public var captureTimePartialResult: CaptureTimePartialResult
        public var finalPartialResult: FinalPartialResult
        public var requiredStyle: RequiredStyle

        public init(
            captureTimePartialResult: CaptureTimePartialResult = .absent,
            finalPartialResult: FinalPartialResult = .false,
            requiredStyle: RequiredStyle = .kebabComma
        ) {
            self.captureTimePartialResult = captureTimePartialResult
            self.finalPartialResult = finalPartialResult
            self.requiredStyle = requiredStyle
        }

        /// Every combination, for tests that run a whole payment under each.
        public static var all: [CallbackShape] {
            CaptureTimePartialResult.allCases.flatMap { capture in
                FinalPartialResult.allCases.flatMap { final in
                    RequiredStyle.allCases.map {
                        CallbackShape(captureTimePartialResult: capture, finalPartialResult: final, requiredStyle: $0)
                    }
                }
            }
        }

        /// The `Required` fields for `items`.
        func required(_ items: [PaymentItem]) -> [(String, String)] {
            switch requiredStyle {
            case .kebabComma: return [("Required", items.map(\.rawValue).joined(separator: ","))]
            case .pascalComma: return [("Required", items.map(Self.pascal).joined(separator: ","))]
            case .repeatedFields:
                return items.isEmpty ? [("Required", "")] : items.map { ("Required", Self.pascal($0)) }
            }
        }

        /// `payment-card-number` → `PaymentCardNumber`.
        static func pascal(_ item: PaymentItem) -> String {
            item.rawValue.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
    }

    /// One callback the simulator sent, and how the receiver answered.
    public struct SentCallback: Sendable {
        public var url: String
        public var fields: [(String, String)]
        public var status: Int?
    }

    struct Call {
        var sid: CallSID
        var status: String = "in-progress"
        var script: CallerScript
        var activePayment: PaymentSID?
        /// Its recordings (``Configuration/recordsCalls``, ``startRecording(on:)``), oldest first.
        var recordings: [SimulatedRecording] = []
    }

    struct Payment {
        var sid: PaymentSID
        var callSID: CallSID
        var statusCallback: String
        var options: [String: String]
        var required: [PaymentItem]
        var typed: [PaymentItem: String] = [:]
        var finished = false
        var created: Date
        var typing: Typing?
        /// Its last callback is queued: later ones are dropped (Twilio sends nothing after a
        /// session's end).
        var callbacksClosed = false
    }

    /// Twilio's throttling as the simulator plays it: HTTP 429 with error 20429, and a
    /// `Retry-After` header when one is set, before the request has any effect.
    public struct Throttle: Sendable, Equatable {
        /// How many of the next authenticated requests are refused; `nil` refuses every one
        /// until the throttle is lifted (a sustained throttle).
        public var requests: Int?
        /// The `Retry-After` seconds sent with each refusal; `nil` sends none.
        public var retryAfter: Int?

        public init(requests: Int?, retryAfter: Int? = nil) {
            self.requests = requests
            self.retryAfter = retryAfter
        }
    }

    struct State {
        var throttle: Throttle?
        /// How many requests were refused as throttled so far.
        var throttled = 0
        var calls: [CallSID: Call] = [:]
        var payments: [PaymentSID: Payment] = [:]
        var replays: [String: (fingerprint: String, status: Int, body: String)] = [:]
        var replayOrder: [String] = []
        var sent: [SentCallback] = []
        /// Callbacks queued or on their way.
        var pendingCallbacks = 0
        /// Callbacks waiting for a worker, per payment.
        var deliveries = CallbackDeliveries()
        var nextNumber = 0
        /// Recording updates to refuse (``failRecordingUpdates(_:)``; `Int.max`: every one).
        var failingRecordingUpdates = 0
        /// Updates applied before those start failing.
        var recordingUpdatesBeforeFailing = 0
        /// How many updates each recording took.
        var recordingUpdates: [RecordingSID: Int] = [:]
        /// How many requests were addressed to each host.
        var hosts: [String: Int] = [:]
    }

    public let configuration: Configuration
    let logger: Logger
    let state = Mutex(State())
    /// Payment creations held on purpose (``holdCreates(_:count:)``).
    let held = Mutex(HeldCreates())
    /// The callers' typing and the callbacks' delivery (``runCallers()``).
    let work = SimulatorWork()
    let signer: WebhookSignature
    private let authorization: String

    public init(configuration: Configuration, logger: Logger = Logger(label: "twilio-simulator")) {
        self.configuration = configuration
        self.logger = logger
        self.signer = WebhookSignature(authToken: configuration.authToken)
        let pair = "\(configuration.credentials.apiKeySID):\(configuration.credentials.apiSecret.revealed)"
        self.authorization = "Basic " + Data(pair.utf8).base64EncodedString()
    }

    // MARK: Throttling

    /// Starts throttling (the next `throttle.requests` requests, or every one), or lifts it
    /// with `nil`.
    public func throttle(_ throttle: Throttle?) {
        state.withLock { $0.throttle = throttle.flatMap { ($0.requests ?? 1) > 0 ? $0 : nil } }
    }

    /// How many requests were refused as throttled so far.
    public var throttledRequests: Int { state.withLock { $0.throttled } }

    /// How many authenticated requests were addressed to each host (``Configuration/host``).
    public var requestHosts: [String: Int] { state.withLock { $0.hosts } }

    /// The header a route that forwards requests to the simulator names their original host in.
    public static let forwardedHost = HTTPField.Name("X-Forwarded-Host")!

    /// The throttle's refusal for this request, if it is throttled (counting it down).
    private func throttled() -> Failure? {
        state.withLock { state -> Failure? in
            guard var throttle = state.throttle else { return nil }
            if let remaining = throttle.requests {
                throttle.requests = remaining - 1
                state.throttle = remaining > 1 ? throttle : nil
            }
            state.throttled += 1
            return Failure(
                status: .tooManyRequests, code: 20429, message: "Too Many Requests", retryAfter: throttle.retryAfter)
        }
    }

    // MARK: Calls and callers

    /// Places a simulated call whose caller follows `script`; returns its SID.
    public func startCall(_ script: CallerScript = .default) -> CallSID {
        state.withLock { state in
            state.nextNumber += 1
            let sid = makeSID(CallSID.self, state.nextNumber + 0xCA11)
            state.calls[sid] = makeCall(sid, script, in: &state)
            return sid
        }
    }

    /// Replaces the script of the caller on `callSID` (placing the call if unknown).
    public func setScript(_ script: CallerScript, for callSID: CallSID) {
        state.withLock { state in
            if state.calls[callSID] == nil { state.calls[callSID] = makeCall(callSID, script, in: &state) }
            state.calls[callSID]?.script = script
        }
    }

    /// Runs the simulated callers' typing and the callbacks' delivery as children until the
    /// calling task is cancelled, then stops them: no keypress is played and no callback sent
    /// after it returns. A host that serves the simulator runs this beside it; without it, each
    /// caller and delivery runs as a task of its own.
    public func runCallers() async {
        await work.run()
    }

    /// Every callback sent so far, in order.
    public var sentCallbacks: [SentCallback] { state.withLock { $0.sent } }

    /// Waits until every scheduled callback has been delivered (or `timeout` passes).
    public func waitUntilQuiet(timeout: Duration = .seconds(10)) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let busy = state.withLock { state in
                state.pendingCallbacks > 0 || state.payments.values.contains { $0.typing != nil }
            }
            if !busy { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// 16 random hex digits of this simulator's own: the SIDs it makes never repeat another
    /// simulator's (a restarted `--simulate` on the same database must not collide with the
    /// payments it stored before), as Twilio's never repeat.
    let sidPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 16).leftPadded(to: 16)

    /// A SID of this simulator: its prefix, then `number` in 16 hex digits.
    func makeSID<T: TwilioSID>(_ type: T.Type, _ number: Int) -> T {
        T(validated: T.prefix + sidPrefix + String(number, radix: 16).leftPadded(to: 16))
    }

    // MARK: HTTP

    /// The router of the stand-in API.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let base = "2010-04-01/Accounts/:account/Calls"
        router.post("\(base)/:call/Payments.json") { [self] request, context in
            let hold = takeCreateHold()
            if hold == .beforeEffect { await waitForRelease(.beforeEffect) }
            let response = try await handle(request, context) { form, account, call in
                try self.create(form: form, call: call)
            }
            if hold == .afterEffect { await waitForRelease(.afterEffect) }
            return response
        }
        router.post("\(base)/:call/Payments/{payment}.json") { [self] request, context in
            try await handle(request, context) { form, account, call in
                try self.update(form: form, call: call, paymentText: context.parameters.get("payment") ?? "")
            }
        }
        addRecordingRoutes(to: router, base: base)
        router.get("\(base)/{call}.json") { [self] request, context in
            try await handle(request, context) { _, _, call in try self.fetchCall(call) }
        }
        return router
    }

    /// A Hummingbird application serving the API on `host:port` (0 picks a free port, reported
    /// through `onRunning`).
    public func makeApplication(
        host: String = "127.0.0.1", port: Int = 0,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(), server: .guardedHTTP1(limits: configuration.limits, logger: logger),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: "twilio-simulator",
                backlog: configuration.limits.backlog),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    struct Failure: Error {
        var status: HTTPResponse.Status
        var code: Int
        var message: String
        var retryAfter: Int? = nil
    }

    func handle(
        _ request: Request, _ context: BasicRequestContext,
        _ body: @Sendable ([(String, String)], String, String) throws -> (HTTPResponse.Status, String)
    ) async throws -> Response {
        do {
            guard request.headers[.authorization] == authorization else {
                throw Failure(status: .unauthorized, code: 20003, message: "Authentication Error - invalid username")
            }
            let account = context.parameters.get("account") ?? ""
            guard account == configuration.credentials.accountSID.rawValue else {
                throw Failure(
                    status: .unauthorized, code: 20003,
                    message: "Authentication Error - the account does not match the key")
            }
            if let throttled = throttled() { throw throttled }
            let addressed = request.headers[Self.forwardedHost] ?? request.head.authority ?? "-"
            state.withLock { $0.hosts[addressed, default: 0] += 1 }
            if let host = configuration.host, addressed.lowercased() != host.lowercased() {
                throw Failure(
                    status: .notFound, code: 20404,
                    message: "The requested resource \(request.uri.path) was not found")
            }
            let call = context.parameters.get("call") ?? ""
            guard CallSID(call) != nil else {
                throw Failure(
                    status: .notFound, code: 20404, message: "The requested resource \(request.uri.path) was not found")
            }
            var form: [(String, String)] = []
            if request.method == .post {
                let buffer = try await request.body.collect(upTo: 64 * 1024)
                guard let decoded = FormEncoding.decode(String(buffer: buffer)) else {
                    throw Failure(
                        status: .badRequest, code: 20001, message: "The request body is not valid form encoding")
                }
                form = decoded
            }
            let (status, json) = try replaying(request: request, form: form) { try body(form, account, call) }
            return Self.json(status, json)
        } catch let failure as Failure {
            var shown = failure
            if let suffix = configuration.errorMessageSuffix { shown.message += " " + suffix }
            var response = Self.json(failure.status, Self.errorBody(shown))
            if let retryAfter = failure.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        }
    }

    /// Runs `operation` once per IdempotencyKey: a repeat replays the first answer.
    private func replaying(
        request: Request, form: [(String, String)], _ operation: () throws -> (HTTPResponse.Status, String)
    ) throws -> (HTTPResponse.Status, String) {
        guard request.method == .post, let key = form.first(where: { $0.0 == "IdempotencyKey" })?.1, !key.isEmpty else {
            return try operation()
        }
        let fingerprint =
            request.uri.path + "?"
            + form.filter { $0.0 != "IdempotencyKey" }.map { "\($0.0)=\($0.1)" }.sorted().joined(separator: "&")
        if let replay = state.withLock({ $0.replays[key] }) {
            guard replay.fingerprint == fingerprint else {
                throw Failure(
                    status: .badRequest, code: 64020,
                    message: "IdempotencyKey \(key) was already used for a different request")
            }
            return (HTTPResponse.Status(code: replay.status), replay.body)
        }
        let result = try operation()
        let limit = configuration.idempotencyHistoryLimit
        state.withLock { state in
            state.replays[key] = (fingerprint, Int(result.0.code), result.1)
            state.replayOrder.append(key)
            if state.replayOrder.count > limit {
                let expired = state.replayOrder.prefix(state.replayOrder.count - limit)
                for old in expired { state.replays.removeValue(forKey: old) }
                state.replayOrder.removeFirst(expired.count)
            }
        }
        return result
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func errorBody(_ failure: Failure) -> String {
        jsonObject([
            "code": failure.code, "message": failure.message,
            "more_info": "https://www.twilio.com/docs/errors/\(failure.code)", "status": Int(failure.status.code),
        ])
    }

    /// A JSON object with sorted keys, as Twilio's bodies read.
    static func jsonObject(_ fields: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static let rfc2822: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter
    }()

    static func iso8601(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    func resourceBody(_ payment: PaymentSID, call: CallSID, created: Date, updated: Date) -> String {
        let account = configuration.credentials.accountSID.rawValue
        return Self.jsonObject([
            "account_sid": account, "call_sid": call.rawValue, "sid": payment.rawValue,
            "date_created": Self.rfc2822.string(from: created), "date_updated": Self.rfc2822.string(from: updated),
            "uri": "/2010-04-01/Accounts/\(account)/Calls/\(call)/Payments/\(payment).json",
        ])
    }

    private func fetchCall(_ callText: String) throws -> (HTTPResponse.Status, String) {
        let sid = CallSID(callText)!
        let call = state.withLock { state -> Call? in
            if state.calls[sid] == nil, configuration.acceptsUnknownCalls {
                state.calls[sid] = makeCall(sid, .default, in: &state)
            }
            return state.calls[sid]
        }
        guard let call else {
            throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
        }
        return (
            .ok,
            Self.jsonObject([
                "sid": call.sid.rawValue, "account_sid": configuration.credentials.accountSID.rawValue,
                "status": call.status, "direction": "inbound", "parent_call_sid": NSNull(),
            ])
        )
    }
}

extension String {
    /// Zeros in front, up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
