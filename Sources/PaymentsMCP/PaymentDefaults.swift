public import TwilioPayments

/// Defaults for `startPaymentCapture` from the environment (`TOKEN_TYPE`, `CURRENCY`,
/// `PAYMENT_CONNECTOR`, `POSTAL_CODE`, `SECURITY_CODE`), applied when the agent does not say
/// otherwise.
public struct PaymentDefaults: Sendable, Equatable {
    public var tokenType: TokenType?
    public var currency: String?
    public var paymentConnector: String?
    /// Whether Twilio asks for the billing postal code. `false` unless configured, as the
    /// TypeScript server we replace always sent `PostalCode=false`.
    public var postalCode: Bool
    /// Whether Twilio asks for the security code (`true`, Twilio's own default).
    public var securityCode: Bool

    public init(
        tokenType: TokenType? = nil, currency: String? = nil, paymentConnector: String? = nil, postalCode: Bool = false,
        securityCode: Bool = true
    ) {
        self.tokenType = tokenType
        self.currency = currency
        self.paymentConnector = paymentConnector
        self.postalCode = postalCode
        self.securityCode = securityCode
    }
}
