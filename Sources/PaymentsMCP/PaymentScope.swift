public import MCPCore
public import PaymentFlow

/// The scopes of the payment tools (OAuth `scope`, or a static token's entry), as a payments
/// API grants them: reading, capturing, charging and seeing everyone's payments are separate.
public enum PaymentScope {
    /// See payments: `getPaymentStatus`, the status resource, completions, subscriptions.
    public static let read = "payments:read"
    /// Take a card or account: start a payment that tokenizes, capture, complete, cancel.
    public static let capture = "payments:capture"
    /// Start a payment that charges an amount (the call's amount due included).
    public static let charge = "payments:charge"
    /// See and act on every principal's payments.
    public static let `operator` = "payments:operator"

    /// Every scope, in order of power.
    public static let all = [read, capture, charge, `operator`]
    /// What a static token holds when its entry names no scopes: all but operator.
    public static let defaultForTokens: Set<String> = [read, capture, charge]
}

extension Principal {
    /// This principal as the payment flow sees it: its owner name, tenant and powers.
    public var paymentActor: PaymentActor {
        PaymentActor(
            owner: PaymentOwner(principal: id, tenant: tenant), isOperator: has(PaymentScope.operator),
            mayCharge: has(PaymentScope.charge))
    }
}

extension RequestContext {
    /// The calling principal as the payment flow sees it, with the client's address for the
    /// audit trail.
    var paymentActor: PaymentActor {
        var actor = principal.paymentActor
        actor.origin = clientAddress
        return actor
    }
}
