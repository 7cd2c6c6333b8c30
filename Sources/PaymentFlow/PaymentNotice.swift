public import Foundation
public import TwilioPayments

/// What happened to a payment, as those outside the flow hear of it (the voice app's webhook,
/// say): one type per moment a voice agent acts on.
public enum PaymentNoticeType: String, Sendable, CaseIterable {
    /// Twilio created the session: the caller can be asked for the first item.
    case started = "payment.started"
    /// Twilio is collecting an item from the keypad.
    case itemRequested = "payment.item.requested"
    /// The caller is typing the item (the masked value so far).
    case itemProgress = "payment.item.progress"
    /// The item is complete.
    case itemCaptured = "payment.item.captured"
    /// The entry was refused (the reason is Twilio's `ErrorType`); it can be captured again.
    case itemInvalid = "payment.item.invalid"
    /// Charged or tokenized: the confirmation code or token is in the status.
    case completed = "payment.completed"
    /// Declined or failed for good.
    case failed = "payment.failed"
    /// Cancelled.
    case cancelled = "payment.cancelled"
    /// The call ended before the payment did.
    case callEnded = "payment.call_ended"
}

/// One thing that happened to a payment: its type, the item it concerns, why (for an invalid
/// entry or a failure), and the session as it stood right after (masked, as every stored
/// session is). Its `id` is unique and stable: a receiver de-duplicates repeated deliveries by it.
public struct PaymentNotice: Sendable, Equatable {
    public var id: String
    public var type: PaymentNoticeType
    public var item: PaymentItem?
    public var reason: String?
    public var session: PaymentSession
    public var occurredAt: Date

    public init(
        id: String, type: PaymentNoticeType, item: PaymentItem? = nil, reason: String? = nil, session: PaymentSession,
        occurredAt: Date
    ) {
        self.id = id
        self.type = type
        self.item = item
        self.reason = reason
        self.session = session
        self.occurredAt = occurredAt
    }

    /// The notices one change of a session makes, in the order they happened: the start, then
    /// each item's news in asking order, then the end. Pure: the same change always makes the
    /// same notices, with ids derived from the session's id, its new version and the notice's
    /// place (so a change applied twice cannot announce twice under two ids).
    public static func notices(from old: PaymentSession?, to new: PaymentSession, at date: Date) -> [PaymentNotice] {
        guard old.map({ $0.version < new.version }) ?? true else { return [] }
        var found: [(PaymentNoticeType, PaymentItem?, String?)] = []
        // A session is announced once Twilio knows it (its SID), or when it ends without one.
        if new.paymentSID != nil, old?.paymentSID == nil { found.append((.started, nil, nil)) }
        if new.paymentSID != nil {
            for item in PaymentItem.allCases {
                let before = old?.progress(item) ?? ItemProgress()
                let after = new.progress(item)
                switch after.state {
                case .requested where after.requests > before.requests || !before.state.isInProgress:
                    found.append((.itemRequested, item, nil))
                case .capturing(let masked) where before.state != after.state:
                    if !before.state.isInProgress || after.requests > before.requests {
                        found.append((.itemRequested, item, nil))
                    }
                    if masked != nil { found.append((.itemProgress, item, nil)) }
                case .captured where !before.state.isCaptured || after.requests > before.requests:
                    found.append((.itemCaptured, item, nil))
                case .failed(let error)
                where after.failedAttempts > before.failedAttempts || before.state != after.state:
                    found.append((.itemInvalid, item, error.rawValue))
                default:
                    break
                }
            }
        }
        if !(old?.phase.isFinished ?? false) {
            switch new.phase {
            case .completed: found.append((.completed, nil, nil))
            case .failed(let failure): found.append((.failed, nil, failure.reason))
            case .cancelled(let reason): found.append((.cancelled, nil, reason))
            case .callEnded(let failure): found.append((.callEnded, nil, failure.reason))
            default: break
            }
        }
        return found.enumerated().map { index, notice in
            PaymentNotice(
                id: "evt_" + stableID(new.id, new.version, index), type: notice.0, item: notice.1, reason: notice.2,
                session: new, occurredAt: date)
        }
    }

    /// 32 hex digits of the SHA-256 of the session id, the version and a position: stable
    /// across replicas and retries.
    static func stableID(_ session: String, _ version: UInt64, _ index: Int) -> String {
        String(CallbackSecretHash.of("payment-notice/\(session)/\(version)/\(index)").prefix(32))
    }
}

/// Where the coordinator hands the notices of every change it stores: a webhook dispatcher.
///
/// Two ways, chosen by the sink:
/// - In memory: ``outboxMessages(for:)`` answers `nil` (the default), and ``publish(_:)`` gets
///   the notices after the change is stored, in the order this coordinator stored changes.
/// - Through a transactional outbox: ``outboxMessages(for:)`` turns the notices into messages,
///   which a ``PaymentOutboxStore`` writes in the same transaction as the change; ``publish(_:)``
///   then only says that there is something new to deliver.
///
/// Both must return quickly (queue, do not deliver inline).
public protocol PaymentNoticeSink: Sendable {
    /// Notices of a change just stored.
    func publish(_ notices: [PaymentNotice]) async
    /// The outbox messages for `notices`, when this sink delivers from an outbox; `nil` when it
    /// takes them in memory through ``publish(_:)``.
    func outboxMessages(for notices: [PaymentNotice]) -> [OutboxMessage]?
}

extension PaymentNoticeSink {
    public func outboxMessages(for notices: [PaymentNotice]) -> [OutboxMessage]? { nil }
}
