import AsyncHTTPClient
import CoreMetrics
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import PaymentFlow
public import ServiceLifecycle
import Synchronization

/// Delivers payment notices to webhook endpoints: at least once, in order per payment, each
/// endpoint on its own.
///
/// - ``publish(_:)`` only queues (the payment flow never waits on an endpoint).
/// - Each endpoint keeps a queue per payment. One payment's events go one at a time, in order: a
///   later event waits while an earlier one is retried. Other payments, and other endpoints,
///   go on meanwhile.
/// - A 2xx response is delivery. `410 Gone` disables the endpoint (with a warning). Anything
///   else — another status, a timeout, a refused connection, a target that fails its check — is
///   retried with exponential backoff and full jitter (``RetryPolicy``), honouring
///   `Retry-After`, until ``RetryPolicy/maximumAge`` after the event; then it is given up, with
///   an error in the log.
/// - Every attempt is signed afresh (the `webhook-timestamp` is the attempt's), under the same
///   `webhook-id`, so a receiver de-duplicates by it.
/// - Queues are bounded (``maximumPending`` per endpoint); an event past the bound is dropped
///   and logged at error (the in-memory queue is not durable: a process that stops loses what
///   it had not delivered).
public final class WebhookDispatcher: PaymentNoticeSink, Service, CustomStringConvertible, Sendable {
    /// Its name in a service group and in logs.
    public var description: String { "webhooks" }
    /// Where events go, as the dispatcher needs it: a name for logs, the URL, which event types
    /// it takes, and how each attempt is signed.
    public struct Destination: Sendable {
        public var name: String
        public var url: String
        public var accepts: @Sendable (String) -> Bool
        /// The headers that sign `body` for event `id` at `timestamp` (Unix seconds).
        public var sign: @Sendable (_ id: String, _ timestamp: Int, _ body: [UInt8]) -> [(name: String, value: String)]

        public init(
            name: String, url: String, accepts: @escaping @Sendable (String) -> Bool,
            sign:
                @escaping @Sendable (_ id: String, _ timestamp: Int, _ body: [UInt8]) -> [(name: String, value: String)]
        ) {
            self.name = name
            self.url = url
            self.accepts = accepts
            self.sign = sign
        }
    }

    /// How failed deliveries are retried.
    public struct RetryPolicy: Sendable {
        /// The first wait (doubled each attempt, with full jitter).
        public var initialDelay: Duration
        /// The longest wait between two attempts (a longer `Retry-After` is shortened to it).
        public var maximumDelay: Duration
        /// How long after the event it is still attempted.
        public var maximumAge: Duration
        /// One attempt's time limit (connect, send, first response bytes).
        public var attemptTimeout: Duration

        public init(
            initialDelay: Duration = .seconds(2), maximumDelay: Duration = .seconds(3600),
            maximumAge: Duration = .seconds(86_400),
            attemptTimeout: Duration = .seconds(15)
        ) {
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
            self.maximumAge = maximumAge
            self.attemptTimeout = attemptTimeout
        }

        /// The wait before attempt `attempt + 1`: `initialDelay · 2^attempt`, at most
        /// `maximumDelay`, times a random factor in [0.5, 1].
        func delay(after attempt: Int) -> Duration {
            let exponential = initialDelay * (1 << min(attempt, 20))
            let capped = min(exponential, maximumDelay)
            return capped * Double.random(in: 0.5...1)
        }
    }

    /// Checks a target before each attempt (``WebhookTarget``): the URL to post to and the
    /// addresses it was checked at (the connection goes to one of them), or why not.
    public typealias TargetCheck = @Sendable (String) async -> Result<WebhookTarget, any Error>

    /// Counts for one endpoint, since start.
    public struct Counts: Sendable, Equatable, CustomStringConvertible {
        public var delivered = 0
        public var retried = 0
        public var failed = 0
        public var dropped = 0
        public var pending = 0
        public var disabled = false

        public var description: String {
            "delivered \(delivered), pending \(pending), retried \(retried), failed \(failed), dropped \(dropped)\(disabled ? ", disabled (410)" : "")"
        }
    }

    public let destinations: [Destination]
    public let retry: RetryPolicy
    /// Events queued per endpoint before new ones are dropped.
    public let maximumPending: Int
    let logger: Logger
    let client: HTTPClient
    let checkTarget: TargetCheck
    /// Set when deliveries come from a transactional outbox rather than from memory.
    public let outboxDelivery: OutboxDelivery?
    private let workers: [EndpointWorker]
    private let outboxWorkers: [OutboxWorker]

    /// A dispatcher for `destinations`. With `outbox`, it delivers what the store's outbox holds
    /// (the coordinator writes it with each change, through ``outboxMessages(for:)``), shared with
    /// every replica: nothing is lost when a process dies, and `maximumPending` does not apply.
    /// The coordinator's store must then be the ``PaymentFlow/PaymentOutboxStore`` that writes
    /// this outbox (`PostgresPaymentDatabase`'s `store` beside its `outbox`): with another store
    /// the messages are written nowhere.
    /// Without, it delivers from bounded queues in memory.
    public init(
        destinations: [Destination], retry: RetryPolicy = RetryPolicy(), maximumPending: Int = 10_000,
        outbox: OutboxDelivery? = nil, checkTarget: @escaping TargetCheck,
        logger: Logger = Logger(label: "agent-payments.webhooks")
    ) {
        self.destinations = destinations
        self.retry = retry
        self.maximumPending = max(1, maximumPending)
        self.logger = logger
        self.checkTarget = checkTarget
        self.outboxDelivery = outbox
        client = Self.sharedClient
        let shared = Shared(
            client: client, retry: retry, checkTarget: checkTarget, logger: logger, maximumPending: self.maximumPending)
        if let outbox {
            workers = []
            outboxWorkers = destinations.map { OutboxWorker(destination: $0, shared: shared, delivery: outbox) }
        } else {
            workers = destinations.map { EndpointWorker(destination: $0, shared: shared) }
            outboxWorkers = []
        }
    }

    /// Queues `notices` for every endpoint that takes their type; returns at once. From an
    /// outbox, the notices are already stored: this only wakes the endpoints to deliver them.
    public func publish(_ notices: [PaymentNotice]) async {
        for worker in outboxWorkers { worker.doorbell.ring() }
        guard !workers.isEmpty else { return }
        for notice in notices {
            let body = WebhookPayload.body(notice)
            let delivery = Delivery(
                id: notice.id, type: notice.type.rawValue, payment: notice.session.id, body: body,
                createdAt: ContinuousClock.now)
            for worker in workers where worker.destination.accepts(delivery.type) { worker.enqueue(delivery) }
        }
    }

    /// Each endpoint's counts, by name.
    public var counts: [String: Counts] {
        Dictionary(
            uniqueKeysWithValues: workers.map { ($0.destination.name, $0.counts) }
                + outboxWorkers.map { ($0.destination.name, $0.counts) })
    }

    /// Delivers until a graceful shutdown (every delivery runs as a child of this task: published
    /// events wait until it runs); then gives queued deliveries a moment (at most 5 s, none when
    /// cancelled) to finish and stops the rest. From an outbox, the endpoints claim and deliver
    /// meanwhile, and delivered and failed messages are purged after a day and a week; a delivery
    /// stopped at shutdown is attempted again (here or by another replica) once its lease runs out.
    public func run() async throws {
        if let outboxDelivery {
            try await runFromOutbox(outboxDelivery)
            return
        }
        await withDiscardingTaskGroup { group in
            for worker in workers { group.addTask { await worker.run() } }
            try? await gracefulShutdown()
            let deadline = ContinuousClock.now + .seconds(5)
            while !Task.isCancelled, workers.contains(where: { $0.counts.pending > 0 }), ContinuousClock.now < deadline
            {
                try? await Task.sleep(for: .milliseconds(50))
            }
            stop()
            group.cancelAll()
        }
    }

    private func runFromOutbox(_ delivery: OutboxDelivery) async throws {
        await withTaskGroup(of: Void.self) { group in
            for worker in outboxWorkers { group.addTask { await worker.run() } }
            group.addTask { [logger] in
                // Finished messages kept a while for `webhooks status`, then forgotten; any replica may do it.
                while !Task.isCancelled {
                    let now = Date()
                    do {
                        let purged = try await delivery.outbox.purge(
                            deliveredBefore: now.addingTimeInterval(-86_400),
                            failedBefore: now.addingTimeInterval(-7 * 86_400))
                        if purged > 0 { logger.info("webhook outbox purged", metadata: ["messages": "\(purged)"]) }
                    } catch {
                        logger.debug(
                            "webhook outbox purge failed; trying again later", metadata: ["reason": "\(error)"])
                    }
                    try? await Task.sleep(for: .seconds(600))
                }
            }
            try? await gracefulShutdown()
            for worker in outboxWorkers { worker.finish() }
            // The workers end once their deliveries in flight do; at most 5 s.
            let deadline = ContinuousClock.now + .seconds(5)
            while outboxWorkers.contains(where: { $0.counts.pending > 0 }), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            group.cancelAll()
        }
    }

    /// Stops every endpoint's deliveries now; what was not delivered is logged at error.
    func stop() {
        for worker in workers {
            let left = worker.stop()
            if left > 0 {
                logger.error(
                    "webhook events not delivered before shutdown",
                    metadata: ["endpoint": "\(worker.destination.name)", "events": "\(left)"])
            }
        }
    }

    /// One HTTP client for every dispatcher of the process, as `HTTPClient.shared` is (it is
    /// never shut down), but never following a redirect (a receiver cannot send events
    /// elsewhere), with connect and read timeouts and no decompression.
    static let sharedClient: HTTPClient = HTTPClient(
        eventLoopGroupProvider: .singleton, configuration: clientConfiguration())

    /// The clients' configuration: no redirects, connect and read timeouts, no decompression,
    /// and `dnsOverride` (a host name's connection pinned to an address it was checked at).
    static func clientConfiguration(dnsOverride: [String: String] = [:]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: .seconds(10)))
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        configuration.dnsOverride = dnsOverride
        return configuration
    }

    /// What every endpoint's worker shares.
    struct Shared: Sendable {
        let client: HTTPClient
        let retry: RetryPolicy
        let checkTarget: TargetCheck
        let logger: Logger
        let maximumPending: Int
    }

    /// One event for one endpoint.
    struct Delivery: Sendable {
        let id: String
        let type: String
        let payment: String
        let body: [UInt8]
        let createdAt: ContinuousClock.Instant
    }
}

/// One endpoint's queues: a queue per payment, drained by one child task of ``run()`` per
/// payment at a time.
final class EndpointWorker: Sendable {
    let destination: WebhookDispatcher.Destination
    private let shared: WebhookDispatcher.Shared
    /// The payments whose queue needs a drain, for ``run()``.
    private let starts = AsyncStream.makeStream(of: String.self)

    private struct State {
        var queues: [String: [WebhookDispatcher.Delivery]] = [:]
        var draining: Set<String> = []
        var counts = WebhookDispatcher.Counts()
        var stopped = false
        var lastWarning: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    init(destination: WebhookDispatcher.Destination, shared: WebhookDispatcher.Shared) {
        self.destination = destination
        self.shared = shared
    }

    var counts: WebhookDispatcher.Counts { state.withLock { $0.counts } }

    func enqueue(_ delivery: WebhookDispatcher.Delivery) {
        let payment = delivery.payment
        let dropped = state.withLock { state -> Bool in
            guard !state.stopped, !state.counts.disabled else { return false }
            guard state.counts.pending < shared.maximumPending else {
                state.counts.dropped += 1
                return true
            }
            state.queues[payment, default: []].append(delivery)
            state.counts.pending += 1
            // One drain per payment at a time, registered before it can look for itself.
            if state.draining.insert(payment).inserted { starts.continuation.yield(payment) }
            return false
        }
        if dropped {
            shared.logger.error(
                "webhook queue full: event dropped",
                metadata: [
                    "endpoint": "\(destination.name)", "event.id": "\(delivery.id)", "event.type": "\(delivery.type)",
                    "limit": "\(shared.maximumPending)",
                ])
        }
    }

    /// Drains each payment's queue in a child task, until stopped (and its drains cancelled,
    /// with this task).
    func run() async {
        await withDiscardingTaskGroup { group in
            for await payment in starts.stream { group.addTask { await self.drain(payment) } }
        }
    }

    /// Stops taking and delivering events (a drain between two attempts ends; one waiting to
    /// retry ends when ``run()`` is cancelled); returns how many events were left undelivered.
    func stop() -> Int {
        let left = state.withLock { state -> Int in
            state.stopped = true
            let left = state.counts.pending
            state.queues.removeAll()
            state.counts.pending = 0
            state.draining.removeAll()
            return left
        }
        starts.continuation.finish()
        return left
    }

    /// Delivers `payment`'s events one after another until its queue is empty.
    private func drain(_ payment: String) async {
        while let next = state.withLock({ state -> WebhookDispatcher.Delivery? in
            guard !state.stopped, !state.counts.disabled, let head = state.queues[payment]?.first else {
                state.queues.removeValue(forKey: payment)
                state.draining.remove(payment)
                return nil
            }
            return head
        }) {
            let outcome = await deliver(next)
            state.withLock { state in
                guard !state.stopped, state.queues[payment]?.first?.id == next.id else { return }
                state.queues[payment]?.removeFirst()
                state.counts.pending -= 1
                switch outcome {
                case .delivered: state.counts.delivered += 1
                case .failed: state.counts.failed += 1
                case .disabled:
                    state.counts.failed += 1
                    state.counts.disabled = true
                    state.counts.dropped += state.counts.pending
                    state.counts.pending = 0
                    state.queues.removeAll()
                }
            }
            if Task.isCancelled { return }
        }
    }

    enum Outcome { case delivered, failed, disabled }

    /// Attempts `delivery` until it is delivered, the endpoint is gone, or it is too old.
    private func deliver(_ delivery: WebhookDispatcher.Delivery) async -> Outcome {
        var attempt = 0
        while !Task.isCancelled {
            let result = await shared.attempt(destination, id: delivery.id, body: delivery.body)
            switch result {
            case .delivered:
                return .delivered
            case .gone:
                shared.logger.warning(
                    "webhook endpoint answered 410 Gone: disabled until restart",
                    metadata: ["endpoint": "\(destination.name)"])
                return .disabled
            case .retry(let reason, let retryAfter):
                var wait = shared.retry.delay(after: attempt)
                if let retryAfter { wait = min(max(retryAfter, wait), shared.retry.maximumDelay) }
                attempt += 1
                state.withLock { $0.counts.retried += 1 }
                if ContinuousClock.now + wait - delivery.createdAt > shared.retry.maximumAge {
                    shared.logger.error(
                        "webhook event given up after retrying",
                        metadata: [
                            "endpoint": "\(destination.name)", "event.id": "\(delivery.id)",
                            "event.type": "\(delivery.type)",
                            "attempts": "\(attempt)", "reason": "\(reason)",
                        ])
                    return .failed
                }
                warn(reason, delivery: delivery, attempt: attempt, wait: wait)
                try? await Task.sleep(for: wait)
            }
        }
        return .failed
    }

    /// A failed attempt's warning, at most one per endpoint every 30 s (with the counts).
    private func warn(_ reason: String, delivery: WebhookDispatcher.Delivery, attempt: Int, wait: Duration) {
        let now = ContinuousClock.now
        let due = state.withLock { state -> WebhookDispatcher.Counts? in
            if let last = state.lastWarning, now - last < .seconds(30) { return nil }
            state.lastWarning = now
            return state.counts
        }
        guard let counts = due else { return }
        shared.logger.warning(
            "webhook delivery failed; retrying",
            metadata: [
                "endpoint": "\(destination.name)", "event.id": "\(delivery.id)", "attempt": "\(attempt)",
                "reason": "\(reason)",
                "retry.in.ms":
                    "\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)",
                "counts": "\(counts)",
            ])
    }

    /// `Retry-After` in seconds or as an HTTP date.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .seconds(max(0, Int(date.timeIntervalSinceNow.rounded(.up))))
    }

    /// An HTTP client error in a few words, never a URL (its query might carry a token).
    static func describe(_ error: any Error) -> String {
        if let client = error as? HTTPClientError {
            switch client {
            case .connectTimeout: return "connect timeout"
            case .readTimeout, .deadlineExceeded: return "no answer in time"
            case .remoteConnectionClosed: return "the connection was closed"
            default: return "HTTP client error"
            }
        }
        return "connection failed (\(type(of: error)))"
    }
}

extension WebhookDispatcher.Shared {
    /// How one attempt ended.
    enum Attempt {
        case delivered
        case gone
        case retry(String, retryAfter: Duration?)
    }

    /// One delivery attempt, counted by endpoint (the operator's names) and result in
    /// `agent_payments_webhook_attempts_total` (`delivered`, `gone`, `retry`), its time in
    /// `agent_payments_webhook_attempt_duration_seconds` (swift-metrics, no backend chosen here).
    func attempt(_ destination: WebhookDispatcher.Destination, id: String, body: [UInt8]) async -> Attempt {
        let start = ContinuousClock.now
        let outcome = await attemptOnce(destination, id: id, body: body)
        let result: String
        switch outcome {
        case .delivered: result = "delivered"
        case .gone: result = "gone"
        case .retry: result = "retry"
        }
        Counter(
            label: "agent_payments_webhook_attempts_total",
            dimensions: [("endpoint", destination.name), ("result", result)]
        ).increment()
        let took = ContinuousClock.now - start
        CoreMetrics.Timer(
            label: "agent_payments_webhook_attempt_duration_seconds", dimensions: [("endpoint", destination.name)]
        ).recordNanoseconds(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
        return outcome
    }

    /// One signed POST of `body` (event `id`) to `destination`, after checking its target.
    private func attemptOnce(
        _ destination: WebhookDispatcher.Destination, id: String, body: [UInt8]
    ) async -> Attempt {
        let target: WebhookTarget
        switch await checkTarget(destination.url) {
        case .success(let checked): target = checked
        case .failure(let error): return .retry("the target was refused: \(error)", retryAfter: nil)
        }
        let url = target.url
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "agent-payments-webhooks")
        for (name, value) in destination.sign(id, Int(Date().timeIntervalSince1970), body) {
            request.headers.add(name: name, value: value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let seconds = retry.attemptTimeout.components.seconds
            let response = try await PinnedClients.shared.client(for: target, default: client).execute(
                request, timeout: .seconds(max(1, seconds)))
            // Read (at most 64 KiB) and discard: a receiver's answer is never kept or logged.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            switch response.status.code {
            case 200..<300: return .delivered
            case 410: return .gone
            default:
                return .retry(
                    "HTTP \(response.status.code)",
                    retryAfter: EndpointWorker.retryAfter(response.headers.first(name: "Retry-After")))
            }
        } catch {
            return .retry(EndpointWorker.describe(error), retryAfter: nil)
        }
    }
}

/// The clients that connect a host name to the address it was checked at, one per host, for the
/// whole process (as the shared client): the HTTP client would otherwise resolve the name again
/// when it connects, and a name that answered a public address to the check could answer a
/// private one then (DNS rebinding). TLS still verifies the certificate for the host name (the
/// override keeps it as the server name). A host whose checked addresses no longer include the
/// pinned one gets a new client, and the old one is shut down once its requests are over.
final class PinnedClients: Sendable {
    static let shared = PinnedClients()

    private let clients = Mutex<[String: (address: String, client: HTTPClient)]>([:])

    /// The client to reach `target` with: `fallback` for an IP literal (nothing to resolve) or a
    /// target without addresses; else the host's pinned client.
    func client(for target: WebhookTarget, default fallback: HTTPClient) -> HTTPClient {
        guard let host = target.url.host(percentEncoded: false), let first = target.addresses.first, !target.isLiteral
        else { return fallback }
        let (client, retired) = clients.withLock { clients -> (HTTPClient, HTTPClient?) in
            if let pinned = clients[host], target.addresses.contains(pinned.address) { return (pinned.client, nil) }
            let client = HTTPClient(
                eventLoopGroupProvider: .singleton,
                configuration: WebhookDispatcher.clientConfiguration(dnsOverride: [host: first]))
            let retired = clients[host]?.client
            clients[host] = (first, client)
            return (client, retired)
        }
        // Shut down once its requests are over, from the client's own callback (no task of ours).
        retired?.shutdown { _ in }
        return client
    }
}
