import Crypto
import Foundation
import HTTPTestSupport
import HTTPTypes
import Hummingbird
import Logging
import PaymentFlow
import Synchronization
import Testing
import TwilioPayments
@testable import PaymentEvents

/// A webhook receiver on loopback: records every request and answers as the test scripts it.
final class Receiver: Sendable {
    struct Request: Sendable {
        var headers: [String: String]
        var body: [UInt8]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var type: String { json["type"] as? String ?? "" }
        var id: String { headers["webhook-id"] ?? "" }
        var payment: String { ((json["data"] as? [String: Any])?["paymentSid"] as? String) ?? "" }
    }

    let requests = Mutex<[Request]>([])
    /// The answer to the n-th request (from 0): a status and headers.
    let script: @Sendable (Int) -> (Int, [String: String])
    let port = Mutex(0)

    init(script: @escaping @Sendable (Int) -> (Int, [String: String]) = { _ in (204, [:]) }) {
        self.script = script
    }

    var url: String { "http://127.0.0.1:\(port.withLock { $0 })/hook" }
    var received: [Request] { requests.withLock { $0 } }
    /// The requests answered 2xx.
    var delivered: [Request] {
        requests.withLock { requests in
            requests.enumerated().filter { (200..<300).contains(script($0.offset).0) }.map(\.element)
        }
    }

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let router = Router()
        router.post("hook") { [self] request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            headers["host"] = request.head.authority
            let index = requests.withLock { requests in
                requests.append(Request(headers: headers, body: Array(buffer: bytes)))
                return requests.count - 1
            }
            let (status, extra) = script(index)
            var fields = HTTPFields()
            for (name, value) in extra { fields[HTTPField.Name(name)!] = value }
            return Response(status: HTTPResponse.Status(code: status), headers: fields)
        }
        var logger = Logger(label: "receiver")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { [self] channel in port.withLock { $0 = channel.localAddress?.port ?? 0 } },
            logger: logger)
        return try await withServing([app]) {
            while port.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            return try await body()
        }
    }
}

@Suite struct WebhookDispatcherTests {
    static let key = SymmetricKey(data: Array("test-secret-test-secret-test-sec".utf8))

    static func destination(
        _ url: String, name: String = "test", accepts: @escaping @Sendable (String) -> Bool = { _ in true }
    ) -> WebhookDispatcher.Destination {
        WebhookDispatcher.Destination(name: name, url: url, accepts: accepts) { id, timestamp, body in
            let mac = HMAC<SHA256>.authenticationCode(for: Array("\(id).\(timestamp).".utf8) + body, using: key)
            return [
                ("webhook-id", id), ("webhook-timestamp", String(timestamp)),
                ("webhook-signature", "v1," + Data(mac).base64EncodedString()),
            ]
        }
    }

    /// Short waits between attempts, a long time for each: on a loaded 2-core CI machine a 5 s
    /// attempt ran out after the receiver had taken the POST, and its retry sent it again (the
    /// at-least-once guarantee, which the tests counting deliveries must not trip over).
    static let fast = WebhookDispatcher.RetryPolicy(
        initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200), maximumAge: .seconds(30),
        attemptTimeout: .seconds(60))

    static func dispatcher(
        _ destinations: [WebhookDispatcher.Destination], retry: WebhookDispatcher.RetryPolicy = fast,
        maximumPending: Int = 10_000
    ) -> WebhookDispatcher {
        var logger = Logger(label: "webhooks")
        logger.logLevel = .critical
        return WebhookDispatcher(
            destinations: destinations, retry: retry, maximumPending: maximumPending,
            checkTarget: { .success(WebhookTarget(url: URL(string: $0)!, addresses: [])) }, logger: logger)
    }

    /// Runs `body` while `dispatcher` runs (its deliveries are its children), then cancels it.
    static func delivering(_ dispatcher: WebhookDispatcher, _ body: () async throws -> Void) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await dispatcher.run() }
            defer { group.cancelAll() }
            try await body()
        }
    }

    /// The notices of a whole payment on call `n`, as the coordinator makes them.
    static func payment(_ n: Int) -> [PaymentNotice] {
        let call = CallSID(validated: "CA" + String(format: "%032x", n))
        let sid = PaymentSID(validated: "PK" + String(format: "%032x", n))
        var session = PaymentSession(callSID: call, configuration: PaymentConfiguration(), at: Date())
        session.reference = "conversation-\(n)"
        var notices: [PaymentNotice] = []
        func step(_ event: PaymentEvent) {
            let next = PaymentReducer.reduce(session, event).session
            notices += PaymentNotice.notices(from: session, to: next, at: Date())
            session = next
        }
        func callback(_ fields: [String: String]) -> PaymentStatusCallback {
            PaymentStatusCallback(
                fields: (fields.merging([
                    "Sid": sid.rawValue, "CallSid": call.rawValue,
                    "AccountSid": "AC" + String(repeating: "0", count: 32),
                ]) { a, _ in a })
                .sorted { $0.key < $1.key })
        }
        step(.sessionCreated(sid, at: Date()))
        step(.captureRequested(.cardNumber, at: Date(), idempotencyKey: "k1"))
        step(
            .callbackReceived(
                callback(["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx"]),
                at: Date()))
        step(
            .callbackReceived(
                callback([
                    "Capture": "payment-card-number", "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx4242",
                ]), at: Date()))
        step(.cancelRequested(at: Date(), idempotencyKey: "k2"))
        step(.callbackReceived(callback(["Result": "cancelled"]), at: Date()))
        return notices
    }

    func eventually(_ what: String, within seconds: Int = 30, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("not within \(seconds) s: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func everyEventArrivesSignedAndInOrderPerPayment() async throws {
        let receiver = Receiver()
        try await receiver.run {
            let dispatcher = Self.dispatcher([Self.destination(receiver.url)])
            try await Self.delivering(dispatcher) {
                let first = Self.payment(1), second = Self.payment(2)
                #expect(first.count >= 5, "\(first.map(\.type))")
                // Interleaved, as two calls would be.
                for (a, b) in zip(first, second) {
                    await dispatcher.publish([a])
                    await dispatcher.publish([b])
                }
                try await eventually("all delivered") { receiver.delivered.count == first.count + second.count }
                for payment in [first, second] {
                    let sid = payment[0].session.paymentSID!.rawValue
                    #expect(
                        receiver.delivered.filter { $0.payment == sid }.map(\.id) == payment.map(\.id),
                        "in order per payment")
                }
                for request in receiver.received {
                    let timestamp = try #require(request.headers["webhook-timestamp"])
                    let expected = HMAC<SHA256>.authenticationCode(
                        for: Array("\(request.id).\(timestamp).".utf8) + request.body, using: Self.key)
                    #expect(request.headers["webhook-signature"] == "v1," + Data(expected).base64EncodedString())
                    #expect(request.headers["content-type"] == "application/json")
                    let data = try #require(request.json["data"] as? [String: Any])
                    #expect(data["reference"] as? String != nil && data["status"] != nil && data["nextStep"] != nil)
                }
                try await eventually("counted") { dispatcher.counts["test"]?.delivered == first.count + second.count }
                dispatcher.stop()
            }
        }
    }

    @Test func failuresAreRetriedUntilTheEndpointRecoversAndNothingIsDeliveredTwice() async throws {
        // 500 for the first five requests, then 2xx; a 429 with Retry-After among them.
        let receiver = Receiver { index in
            index < 5 ? (index == 2 ? (429, ["Retry-After": "1"]) : (500, [:])) : (200, [:])
        }
        try await receiver.run {
            // Waits of 20 ms growing to at most 2 s: room for the receiver's Retry-After of 1 s.
            let retry = WebhookDispatcher.RetryPolicy(
                initialDelay: .milliseconds(20), maximumDelay: .seconds(2), maximumAge: .seconds(30))
            let dispatcher = Self.dispatcher([Self.destination(receiver.url)], retry: retry)
            try await Self.delivering(dispatcher) {
                let events = Self.payment(3)
                await dispatcher.publish(events)
                try await eventually("all delivered after the failures") { receiver.delivered.count == events.count }
                #expect(receiver.delivered.map(\.id) == events.map(\.id), "each once, in order")
                #expect(
                    Set(receiver.received.prefix(5).map(\.id)).count == 1,
                    "the first event was retried while the others waited")
                try await eventually("counted") { dispatcher.counts["test"]?.delivered == events.count }
                #expect(dispatcher.counts["test"]?.retried == 5)
                // Retry-After: 1 was honoured: the attempt after the 429 came at least a second later.
                let after429 = receiver.received[3], at429 = receiver.received[2]
                let gap = Int(after429.headers["webhook-timestamp"]!)! - Int(at429.headers["webhook-timestamp"]!)!
                #expect(gap >= 1, "retried \(gap) s after a Retry-After of 1 s")
            }
        }
    }

    @Test func aGoneEndpointIsDisabledAndADeadOneHoldsUpNoOther() async throws {
        let gone = Receiver { _ in (410, [:]) }
        let healthy = Receiver()
        try await gone.run {
            try await healthy.run {
                // A port nobody listens on: every attempt is refused.
                let dead = Self.destination("http://127.0.0.1:9/hook", name: "dead")
                let dispatcher = Self.dispatcher([
                    Self.destination(gone.url, name: "gone"), dead, Self.destination(healthy.url, name: "healthy"),
                ])
                try await Self.delivering(dispatcher) {
                    let events = Self.payment(4)
                    await dispatcher.publish(events)
                    try await eventually("the healthy endpoint has every event") {
                        healthy.delivered.count == events.count
                    }
                    try await eventually("the gone endpoint is disabled") {
                        dispatcher.counts["gone"]?.disabled == true
                    }
                    #expect(gone.received.count == 1, "nothing more is sent after 410")
                    try await eventually("the dead endpoint is being retried") {
                        (dispatcher.counts["dead"]?.retried ?? 0) > 0
                    }
                    #expect(dispatcher.counts["dead"]?.delivered == 0)
                    dispatcher.stop()
                }
            }
        }
    }

    @Test func filtersAndTheQueueBoundAreKept() async throws {
        let receiver = Receiver()
        try await receiver.run {
            let only = Self.destination(receiver.url, name: "finished") {
                $0 == "payment.cancelled" || $0 == "payment.completed"
            }
            let dead = Self.destination("http://127.0.0.1:9/hook", name: "dead")
            let dispatcher = Self.dispatcher([only, dead], maximumPending: 3)
            try await Self.delivering(dispatcher) {
                let events = Self.payment(5)
                await dispatcher.publish(events)
                try await eventually("the filtered endpoint has its event") { receiver.delivered.count == 1 }
                #expect(receiver.delivered.map(\.type) == ["payment.cancelled"])
                #expect(
                    dispatcher.counts["dead"]?.dropped == events.count - 3,
                    "past the bound, events are dropped (and logged)")
                dispatcher.stop()
            }
        }
    }

    @Test func theConnectionGoesToTheAddressTheCheckApprovedNotToAFreshLookup() async throws {
        let receiver = Receiver()
        try await receiver.run {
            // A name nobody resolves (RFC 6761 `.invalid`): delivered only if the client connects to
            // the checked address instead of looking the name up again (a rebinding DNS would answer
            // differently the second time).
            let port = receiver.url.split(separator: ":").last!.split(separator: "/").first!
            let named = "http://events.rebinding.invalid:\(port)/hook"
            var logger = Logger(label: "webhooks")
            logger.logLevel = .critical
            let dispatcher = WebhookDispatcher(
                destinations: [Self.destination(named)], retry: Self.fast,
                checkTarget: { .success(WebhookTarget(url: URL(string: $0)!, addresses: ["127.0.0.1"])) },
                logger: logger)
            try await Self.delivering(dispatcher) {
                let events = Array(Self.payment(7).prefix(2))
                await dispatcher.publish(events)
                try await eventually("delivered through the pinned address") { receiver.delivered.count == 2 }
                #expect(
                    receiver.received.first?.headers["host"]?.hasPrefix("events.rebinding.invalid") == true,
                    "the Host header keeps the name")
                // The same target approved at a new address gets a new client; an old address no longer approved is not used.
                let unreachable = WebhookTarget(url: URL(string: named)!, addresses: ["127.0.0.2"])
                let fallback = WebhookDispatcher.sharedClient
                let first = PinnedClients.shared.client(
                    for: WebhookTarget(url: URL(string: named)!, addresses: ["127.0.0.1"]), default: fallback)
                let moved = PinnedClients.shared.client(for: unreachable, default: fallback)
                #expect(first !== moved && moved !== fallback)
                #expect(
                    PinnedClients.shared.client(
                        for: WebhookTarget(url: URL(string: "http://127.0.0.1:1/x")!, addresses: ["127.0.0.1"]),
                        default: fallback) === fallback,
                    "an IP literal needs no pinning")
                dispatcher.stop()
            }
        }
    }

    @Test func anEventIsGivenUpAfterItsMaximumAge() async throws {
        let receiver = Receiver { _ in (503, [:]) }
        try await receiver.run {
            let retry = WebhookDispatcher.RetryPolicy(
                initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50), maximumAge: .milliseconds(300))
            let dispatcher = Self.dispatcher([Self.destination(receiver.url)], retry: retry)
            try await Self.delivering(dispatcher) {
                let events = Array(Self.payment(6).prefix(2))
                await dispatcher.publish(events)
                try await eventually("both given up") { dispatcher.counts["test"]?.failed == 2 }
                #expect(dispatcher.counts["test"]?.pending == 0 && dispatcher.counts["test"]?.delivered == 0)
            }
        }
    }

    @Test(.timeLimit(.minutes(1))) func deliveriesAreChildrenOfTheRunAndEndWithIt() async throws {
        // 503 at first: the event then waits an hour to be retried, inside the run.
        let receiver = Receiver { index in index == 0 ? (503, [:]) : (200, [:]) }
        try await receiver.run {
            let retry = WebhookDispatcher.RetryPolicy(
                initialDelay: .seconds(3600), maximumDelay: .seconds(3600), maximumAge: .seconds(36000))
            let dispatcher = Self.dispatcher([Self.destination(receiver.url)], retry: retry)
            let events = Array(Self.payment(8).prefix(1))
            await dispatcher.publish(events)
            try await Task.sleep(for: .milliseconds(300))
            #expect(receiver.received.isEmpty, "nothing is delivered by a dispatcher that does not run")
            // The run ends once the first attempt is in; a retry still waiting then would keep it
            // running for the hour (past the test's time limit), then send a second request.
            try await Self.delivering(dispatcher) {
                try await eventually("the first attempt") { receiver.received.count == 1 }
            }
            #expect(receiver.received.count == 1, "the waiting retry ended with the run, unsent")
            try await Task.sleep(for: .milliseconds(300))
            #expect(receiver.received.count == 1, "nothing is sent after the run ended")
        }
    }

}
