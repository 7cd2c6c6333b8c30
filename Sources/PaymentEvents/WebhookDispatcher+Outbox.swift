import Foundation
import Logging
public import PaymentFlow
import Synchronization

extension WebhookDispatcher {
    /// How a dispatcher delivers from a transactional outbox (``PaymentFlow/PaymentOutbox``)
    /// shared by every replica, instead of from queues in memory.
    public struct OutboxDelivery: Sendable {
        /// The outbox (PostgreSQL's, in `agent-payments`).
        public var outbox: any PaymentOutbox
        /// This dispatcher's name in the outbox's leases (host and process by default).
        public var owner: String
        /// How long a claimed message is held before another replica may take it again: longer
        /// than one attempt ( ``RetryPolicy/attemptTimeout``), since a live replica's attempt must
        /// not be repeated meanwhile; it is how long a dead replica's delivery waits.
        public var lease: Duration
        /// How often each endpoint looks for due messages when nothing wakes it (a change stored
        /// by this process wakes it at once; another replica's change is found on the next look).
        public var pollInterval: Duration
        /// Deliveries in flight at once per endpoint (each a different payment).
        public var concurrency: Int
        /// How long an endpoint waits after a wake-up before it claims, gathering a burst of
        /// changes into one read of the outbox (the latency it adds to a delivery).
        public var gathering: Duration = .milliseconds(20)

        public init(
            outbox: any PaymentOutbox, owner: String = OutboxDelivery.defaultOwner(), lease: Duration = .seconds(60),
            pollInterval: Duration = .seconds(1), concurrency: Int = 32
        ) {
            self.outbox = outbox
            self.owner = owner
            self.lease = lease
            self.pollInterval = pollInterval
            self.concurrency = max(1, concurrency)
        }

        /// `host:pid:random`, unique per process.
        public static func defaultOwner() -> String {
            var name = [CChar](repeating: 0, count: 256)
            let host =
                gethostname(&name, name.count - 1) == 0
                ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
            return "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        }
    }

    /// The outbox messages for `notices`: one per notice and endpoint that takes its type, each
    /// with its rendered body. `nil` when this dispatcher delivers from memory.
    public func outboxMessages(for notices: [PaymentNotice]) -> [OutboxMessage]? {
        guard outboxDelivery != nil else { return nil }
        var messages: [OutboxMessage] = []
        for notice in notices {
            let type = notice.type.rawValue
            let takers = destinations.filter { $0.accepts(type) }
            guard !takers.isEmpty else { continue }
            let body = WebhookPayload.body(notice)
            for destination in takers {
                messages.append(
                    OutboxMessage(
                        destination: destination.name, id: notice.id, payment: notice.session.id, type: type, body: body
                    ))
            }
        }
        return messages
    }
}

/// Wakes one waiting task: at once if rung before it waits, else when rung or when a time is up.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns when rung, after `timeout`, or when cancelled. The timer is a child task.
    func wait(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns when rung or cancelled (a cancellation rings, so a waiter never stays).
    private func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.rung {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            ring()
        }
    }
}

/// One endpoint's deliveries from the outbox: claims what is due (each payment's next message),
/// attempts each once, and reports the outcome; a failed attempt is due again after its backoff.
final class OutboxWorker: Sendable {
    let destination: WebhookDispatcher.Destination
    private let shared: WebhookDispatcher.Shared
    private let delivery: WebhookDispatcher.OutboxDelivery
    let doorbell = Doorbell()

    private struct State {
        var counts = WebhookDispatcher.Counts()
        var stopping = false
        var lastWarning: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    init(
        destination: WebhookDispatcher.Destination, shared: WebhookDispatcher.Shared,
        delivery: WebhookDispatcher.OutboxDelivery
    ) {
        self.destination = destination
        self.shared = shared
        self.delivery = delivery
    }

    /// This process's counts (`pending`: in flight here).
    var counts: WebhookDispatcher.Counts { state.withLock { $0.counts } }

    /// Stops claiming; deliveries in flight go on until they end (or the run is cancelled).
    func finish() {
        state.withLock { $0.stopping = true }
        doorbell.ring()
    }

    /// Claims and delivers until ``finish()``, then waits for the deliveries in flight.
    func run() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let (stopping, disabled, inFlight) = state.withLock {
                    ($0.stopping, $0.counts.disabled, $0.counts.pending)
                }
                if stopping { break }
                let room = delivery.concurrency - inFlight
                if disabled || room <= 0 {
                    await doorbell.wait(upTo: delivery.pollInterval)
                    continue
                }
                let claimed: [ClaimedOutboxMessage]
                do {
                    claimed = try await delivery.outbox.claim(
                        destination: destination.name, owner: delivery.owner, limit: room, lease: delivery.lease)
                } catch {
                    warn(
                        "the outbox could not be read: \(error)", event: nil, attempt: nil, wait: delivery.pollInterval)
                    await doorbell.wait(upTo: delivery.pollInterval)
                    continue
                }
                state.withLock { $0.counts.pending += claimed.count }
                for claim in claimed {
                    group.addTask { [self] in
                        await deliver(claim)
                        state.withLock { $0.counts.pending -= 1 }
                        doorbell.ring()
                    }
                }
                // Everything due was taken: nothing more until something changes or time passes.
                // Then a short pause gathers the changes of a burst into one claim (a payment makes
                // several in a few milliseconds), so that the outbox is read once, not per change.
                if claimed.count < room {
                    await doorbell.wait(upTo: delivery.pollInterval)
                    try? await Task.sleep(for: delivery.gathering)
                }
            }
        }
    }

    /// One attempt of `claim`, and its outcome written back. An outcome that cannot be written
    /// (the store is away) is left to the lease: the message is attempted again after it.
    private func deliver(_ claim: ClaimedOutboxMessage) async {
        let message = claim.message
        let outbox = delivery.outbox
        let age = Duration.seconds(Date().timeIntervalSince(claim.since))
        if age > shared.retry.maximumAge {
            await report { () async throws(PaymentStoreError) in
                try await outbox.failed(claim, reason: "older than the retry period")
            }
            state.withLock { $0.counts.failed += 1 }
            shared.logger.error("webhook event given up: older than the retry period", metadata: metadata(claim))
            return
        }
        switch await shared.attempt(destination, id: message.id, body: message.body) {
        case .delivered:
            await report { () async throws(PaymentStoreError) in try await outbox.delivered(claim) }
            state.withLock { $0.counts.delivered += 1 }
        case .gone:
            await report { () async throws(PaymentStoreError) in
                try await outbox.failed(claim, reason: "the endpoint answered 410 Gone")
            }
            state.withLock {
                $0.counts.failed += 1
                $0.counts.disabled = true
            }
            shared.logger.warning(
                "webhook endpoint answered 410 Gone: disabled in this process until restart; its events wait in the outbox",
                metadata: ["endpoint": "\(destination.name)"])
        case .retry(let reason, let retryAfter):
            var wait = shared.retry.delay(after: max(0, claim.attempts - 1))
            if let retryAfter { wait = min(max(retryAfter, wait), shared.retry.maximumDelay) }
            if age + wait > shared.retry.maximumAge {
                await report { () async throws(PaymentStoreError) in try await outbox.failed(claim, reason: reason) }
                state.withLock { $0.counts.failed += 1 }
                var details = metadata(claim)
                details["reason"] = "\(reason)"
                shared.logger.error("webhook event given up after retrying", metadata: details)
                return
            }
            await report { () async throws(PaymentStoreError) in
                try await outbox.retry(claim, after: wait, reason: reason)
            }
            state.withLock { $0.counts.retried += 1 }
            warn(reason, event: message.id, attempt: claim.attempts, wait: wait)
        }
    }

    private func report(_ write: () async throws(PaymentStoreError) -> Void) async {
        do {
            try await write()
        } catch {
            warn(
                "an outcome could not be written to the outbox (the message is attempted again after its lease): \(error)",
                event: nil, attempt: nil, wait: delivery.lease)
        }
    }

    private func metadata(_ claim: ClaimedOutboxMessage) -> Logger.Metadata {
        [
            "endpoint": "\(destination.name)", "event.id": "\(claim.message.id)", "event.type": "\(claim.message.type)",
            "attempts": "\(claim.attempts)",
        ]
    }

    /// A warning, at most one per endpoint every 30 s (with this process's counts).
    private func warn(_ reason: String, event: String?, attempt: Int?, wait: Duration) {
        let now = ContinuousClock.now
        let due = state.withLock { state -> WebhookDispatcher.Counts? in
            if let last = state.lastWarning, now - last < .seconds(30) { return nil }
            state.lastWarning = now
            return state.counts
        }
        guard let counts = due else { return }
        var details: Logger.Metadata = [
            "endpoint": "\(destination.name)", "reason": "\(reason)", "counts": "\(counts)",
            "retry.in.ms": "\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)",
        ]
        if let event { details["event.id"] = "\(event)" }
        if let attempt { details["attempt"] = "\(attempt)" }
        shared.logger.warning("webhook delivery failed; retrying", metadata: details)
    }
}
