public import TwilioPayments

/// What a session's status shows, decided once for every face that shows it (the MCP status
/// and tool results, the webhook events): the phase, the method, the seed's value members
/// (masked card and bank values, the result, the token or confirmation code), each applicable
/// item's state, what is required and missing, the last error and the failure. Only masked
/// values: every one comes from the session's masked state.
public struct MaskedStatus: Sendable, Equatable {
    /// One item's state.
    public struct Item: Sendable, Equatable {
        public var item: PaymentItem
        /// `not-requested`, `requested`, `capturing`, `captured`, `failed`.
        public var state: String
        public var masked: String?
        /// Twilio's `ErrorType` of the last refused entry.
        public var errorType: String?
        public var failedAttempts: Int
        /// Whether Twilio (or the options) still require it.
        public var required: Bool
    }

    /// The phase's name (`starting`, `active`, … `call-ended`).
    public var phase: String
    public var paymentMethod: String
    /// The seed's value members that have a value, in a fixed order: `chargeAmount`,
    /// `currency`, `tokenType`, `paymentCardNumber`, `paymentCardType`, `securityCode`,
    /// `expirationDate`, `paymentCardPostalCode`, `bankRoutingNumber`, `bankAccountNumber`,
    /// `paymentConfirmationCode`, `paymentToken`, `profileId`, `result`, `lastError`.
    public var values: [(key: String, value: String)]
    /// The applicable items, in asking order.
    public var items: [Item]
    public var required: [PaymentItem]
    public var missing: [PaymentItem]
    /// Why the payment failed or the call ended, when it did.
    public var failure: PaymentFailure?

    /// The members that are the payment's result, exactly as Twilio sent them (a token is not
    /// card data): a redactor leaves them alone.
    public static let resultKeys: Set<String> = ["paymentToken", "paymentConfirmationCode", "profileId"]

    public init(_ session: PaymentSession) {
        var outcome: PaymentOutcome?
        switch session.phase {
        case .completed(let done): outcome = done
        case .failed(let failed), .callEnded(let failed): failure = failed
        default: break
        }
        let result: String? =
            outcome.map { $0.result.rawValue } ?? failure?.result?.rawValue
            ?? (session.phase.name == "cancelled" ? "cancelled" : nil)
        phase = session.phase.name
        paymentMethod = session.configuration.paymentMethod.rawValue
        let options = session.configuration.options
        let candidates: [(String, String?)] = [
            ("chargeAmount", options.chargeAmount), ("currency", options.currency),
            ("tokenType", options.tokenType?.rawValue),
            ("paymentCardNumber", session.maskedValue(.cardNumber)), ("paymentCardType", session.cardType),
            ("securityCode", session.maskedValue(.securityCode)),
            ("expirationDate", session.maskedValue(.expirationDate)),
            ("paymentCardPostalCode", session.maskedValue(.postalCode)),
            ("bankRoutingNumber", session.maskedValue(.bankRoutingNumber)),
            ("bankAccountNumber", session.maskedValue(.bankAccountNumber)),
            ("paymentConfirmationCode", outcome?.confirmationCode), ("paymentToken", outcome?.token),
            ("profileId", outcome?.profileID), ("result", result), ("lastError", session.lastError?.rawValue),
        ]
        values = candidates.compactMap { key, value in value.map { (key, $0) } }
        items = session.configuration.applicableItems.map { item in
            let progress = session.progress(item)
            var errorType: String?
            if case .failed(let error) = progress.state { errorType = error.rawValue }
            return Item(
                item: item, state: progress.state.kind.rawValue, masked: session.maskedValue(item),
                errorType: errorType,
                failedAttempts: progress.failedAttempts, required: session.required.contains(item))
        }
        required = session.required
        missing = session.missingItems
    }

    public static func == (lhs: MaskedStatus, rhs: MaskedStatus) -> Bool {
        lhs.phase == rhs.phase && lhs.paymentMethod == rhs.paymentMethod
            && lhs.values.map(\.key) == rhs.values.map(\.key)
            && lhs.values.map(\.value) == rhs.values.map(\.value) && lhs.items == rhs.items
            && lhs.required == rhs.required
            && lhs.missing == rhs.missing && lhs.failure == rhs.failure
    }
}
