public import Foundation

/// One notice for one subscriber, as a transactional outbox keeps it: who it is for, which
/// notice and payment it is, and the bytes to deliver (rendered once, so every attempt, from
/// any replica, sends the same body).
public struct OutboxMessage: Sendable, Equatable {
    /// The subscriber's name (a webhook endpoint's).
    public var destination: String
    /// The notice's id (``PaymentNotice/id``): unique per notice, the same for every attempt.
    public var id: String
    /// The session the notice is about (``PaymentSession/id``): messages of one payment are
    /// delivered in order, one at a time.
    public var payment: String
    /// The notice's type (``PaymentNoticeType/rawValue``).
    public var type: String
    /// What is delivered.
    public var body: [UInt8]

    public init(destination: String, id: String, payment: String, type: String, body: [UInt8]) {
        self.destination = destination
        self.id = id
        self.payment = payment
        self.type = type
        self.body = body
    }
}

/// A store that writes outbox messages in the same transaction as the change that made them: a
/// change is stored with its messages or not at all, so a process that dies right after a change
/// loses none of its notices (a transactional outbox). ``PaymentOutbox`` reads them back.
public protocol PaymentOutboxStore: PaymentStore {
    /// ``PaymentStore/compareAndSet(_:expectedVersion:)``, storing `messages` with the session
    /// when (and only when) the session is stored.
    func compareAndSet(
        _ session: PaymentSession, expectedVersion: UInt64?, messages: [OutboxMessage]
    ) async throws(PaymentStoreError) -> Bool
}

/// A message taken from the outbox for one delivery attempt: it is leased to whoever claimed it
/// until ``leaseUntil``, and nobody else claims it (nor a later message of its payment) meanwhile.
public struct ClaimedOutboxMessage: Sendable, Equatable {
    /// The outbox's own number for the message (its order).
    public var sequence: Int64
    public var message: OutboxMessage
    /// Attempts so far, this one included.
    public var attempts: Int
    /// When the message was written (or replayed): its age decides when it is given up.
    public var since: Date
    /// Who claimed it.
    public var owner: String
    /// Until when the claim holds; after that, another claimer may take the message again.
    public var leaseUntil: Date

    public init(sequence: Int64, message: OutboxMessage, attempts: Int, since: Date, owner: String, leaseUntil: Date) {
        self.sequence = sequence
        self.owner = owner
        self.message = message
        self.attempts = attempts
        self.since = since
        self.leaseUntil = leaseUntil
    }
}

/// How one destination's outbox stands, for operators (`agent-payments webhooks status`).
public struct OutboxStatus: Sendable, Equatable {
    public var destination: String
    /// Messages not yet delivered nor given up.
    public var pending: Int
    /// Of those, the ones attempted at least once already.
    public var retrying: Int
    /// Of those, the ones leased to a claimer now.
    public var inFlight: Int
    /// Messages given up (retried until too old, refused for good, or the endpoint answered 410).
    public var failed: Int
    /// Messages delivered (those still kept).
    public var delivered: Int
    /// When the oldest pending message was written.
    public var oldestPending: Date?
    /// The latest failed attempt's reason.
    public var lastError: String?

    public init(
        destination: String, pending: Int = 0, retrying: Int = 0, inFlight: Int = 0, failed: Int = 0,
        delivered: Int = 0,
        oldestPending: Date? = nil, lastError: String? = nil
    ) {
        self.destination = destination
        self.pending = pending
        self.retrying = retrying
        self.inFlight = inFlight
        self.failed = failed
        self.delivered = delivered
        self.oldestPending = oldestPending
        self.lastError = lastError
    }
}

/// The reading side of a transactional outbox, shared by every replica: claim, then report.
///
/// - ``claim(destination:owner:limit:lease:)`` hands out each payment's oldest pending
///   message, and only when nothing earlier of that payment is pending: one at a time per
///   payment and destination, in order. Two claimers never hold the same message at once.
/// - A claim ends with ``delivered(_:)``, ``retry(_:after:reason:)`` (pending again, not before
///   then) or ``failed(_:reason:)`` (given up: the payment's next message goes on), each written
///   only while the message is still its claimer's. A claimer that dies ends nothing: the lease
///   runs out and another claims the message again (at least once, never lost).
public protocol PaymentOutbox: Sendable {
    /// Claims up to `limit` messages for `destination` that are due, leasing them to `owner`
    /// for `lease`.
    func claim(
        destination: String, owner: String, limit: Int, lease: Duration
    ) async throws(PaymentStoreError) -> [ClaimedOutboxMessage]
    /// The message was delivered.
    func delivered(_ claim: ClaimedOutboxMessage) async throws(PaymentStoreError)
    /// The attempt failed; the message is due again after `delay`.
    func retry(_ claim: ClaimedOutboxMessage, after delay: Duration, reason: String) async throws(PaymentStoreError)
    /// The message is given up.
    func failed(_ claim: ClaimedOutboxMessage, reason: String) async throws(PaymentStoreError)
    /// Each destination's counts (every destination with messages kept).
    func status() async throws(PaymentStoreError) -> [OutboxStatus]
    /// Makes failed messages pending again, as if written now (for `destination`, or every one,
    /// and those failed since `since`, or all); returns how many.
    func replay(destination: String?, failedSince since: Date?) async throws(PaymentStoreError) -> Int
    /// Forgets delivered messages finished before `delivered`, and failed ones before `failed`;
    /// returns how many.
    func purge(deliveredBefore delivered: Date, failedBefore failed: Date) async throws(PaymentStoreError) -> Int
}
