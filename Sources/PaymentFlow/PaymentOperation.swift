import Foundation
public import TwilioPayments

/// A REST operation on a session.
public enum PaymentOperation: Sendable, Hashable {
    case create
    case capture(PaymentItem)
    case complete
    case cancel
}

extension PaymentOperation {
    /// What an update call carries for this operation; `nil` for create, a call of its own.
    public var update: PaymentUpdate? {
        switch self {
        case .create: return nil
        case .capture(let item): return .capture(item)
        case .complete: return .status(.complete)
        case .cancel: return .status(.cancel)
        }
    }

    /// The event that records Twilio's acceptance of an update (create has its own,
    /// ``PaymentEvent/sessionCreated(_:at:)``).
    func accepted(at date: Date, twilioDate: Date?) -> PaymentEvent? {
        switch self {
        case .create: return nil
        case .capture(let item): return .captureAccepted(item, at: date, twilioDate: twilioDate)
        case .complete: return .completeAccepted(at: date)
        case .cancel: return .cancelAccepted(at: date)
        }
    }
}

/// What the reducer asks its runner to do.
public enum PaymentEffect: Sendable, Equatable {
    /// Send this operation to Twilio.
    case send(PaymentOperation)
}
