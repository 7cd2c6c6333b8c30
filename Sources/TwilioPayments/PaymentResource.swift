public import Foundation

/// The payment resource Twilio returns from create (201) and update (202). It carries no card
/// data, token or result: those arrive only in status callbacks.
public struct PaymentResource: Sendable, Equatable {
    public var accountSID: AccountSID?
    public var callSID: CallSID?
    public var sid: PaymentSID
    public var dateCreated: Date?
    public var dateUpdated: Date?
    /// The resource's path relative to the API base URL.
    public var uri: String?

    public init(
        accountSID: AccountSID?, callSID: CallSID?, sid: PaymentSID, dateCreated: Date?, dateUpdated: Date?,
        uri: String?
    ) {
        self.accountSID = accountSID
        self.callSID = callSID
        self.sid = sid
        self.dateCreated = dateCreated
        self.dateUpdated = dateUpdated
        self.uri = uri
    }

    /// The payment resource as Twilio's JSON spells it (snake_case, every field nullable).
    struct Wire: Decodable {
        var account_sid: String?
        var call_sid: String?
        var sid: String?
        var date_created: String?
        var date_updated: String?
        var uri: String?
    }

    /// From Twilio's JSON; the payment SID is required and validated.
    init(_ wire: Wire, status: Int) throws(TwilioError) {
        guard let sidText = wire.sid else {
            throw .invalidResponse(status: status, detail: "the payment resource has no sid")
        }
        do {
            sid = try PaymentSID(validating: sidText)
        } catch {
            throw .invalidResponse(status: status, detail: error.description)
        }
        accountSID = wire.account_sid.flatMap(AccountSID.init)
        callSID = wire.call_sid.flatMap(CallSID.init)
        dateCreated = wire.date_created.flatMap(TwilioDate.parse)
        dateUpdated = wire.date_updated.flatMap(TwilioDate.parse)
        uri = wire.uri
    }
}

/// What matters of a call to a payment: whether it is still up.
public struct CallResource: Sendable, Equatable {
    /// Twilio's call states.
    public enum Status: String, Sendable {
        case queued, ringing, inProgress = "in-progress", completed, busy, failed, noAnswer = "no-answer", canceled
    }

    public var sid: CallSID
    /// The call's state; `nil` if Twilio sent one this library does not know.
    public var status: Status?
    /// The state exactly as Twilio sent it.
    public var rawStatus: String?
    /// The parent call, for legs Twilio bridged (the PSTN leg that carries keypad tones is
    /// usually the parent).
    public var parentCallSID: CallSID?
    public var direction: String?

    public init(sid: CallSID, rawStatus: String?, parentCallSID: CallSID? = nil, direction: String? = nil) {
        self.sid = sid
        self.rawStatus = rawStatus
        self.status = rawStatus.flatMap(Status.init(rawValue:))
        self.parentCallSID = parentCallSID
        self.direction = direction
    }

    /// The call resource as Twilio's JSON spells it.
    struct Wire: Decodable {
        var sid: String?
        var status: String?
        var parent_call_sid: String?
        var direction: String?
    }

    /// Whether the call can still carry a payment.
    public var isActive: Bool { status == .inProgress }
}
