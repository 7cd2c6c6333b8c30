import Foundation
import TwilioPayments

/// Who started a session: a principal's stable, non-secret name and, when the deployment groups
/// principals, its tenant. Stored with the session, so every replica judges access alike.
public struct PaymentOwner: Sendable, Hashable, CustomStringConvertible {
    /// The principal's id (`token:alice`, `oauth:user-42`, `local`).
    public var principal: String
    /// The principal's tenant, if any.
    public var tenant: String?

    public init(principal: String, tenant: String? = nil) {
        self.principal = principal
        self.tenant = tenant
    }

    public var description: String { principal + (tenant.map { "@" + $0 } ?? "") }
}

/// Who asks to act on or see a session, and whether they may see every session.
public struct PaymentActor: Sendable, Hashable {
    /// The principal asking (and the owner of what it starts).
    public var owner: PaymentOwner
    /// An operator sees and acts on every session.
    public var isOperator: Bool
    /// Whether it may start a payment that charges (rather than only tokenizes), the amount
    /// due of its call included.
    public var mayCharge: Bool
    /// Where its request came from (a client's address), for the audit trail, when known.
    public var origin: String?

    public init(owner: PaymentOwner, isOperator: Bool = false, mayCharge: Bool = true, origin: String? = nil) {
        self.owner = owner
        self.isOperator = isOperator
        self.mayCharge = mayCharge
        self.origin = origin
    }

    /// Whether this actor may see and act on `session`: an operator always; otherwise the
    /// principal that started it, or one of the same tenant. A session that records no owner
    /// (started by a host without principals, or stored by an older build) is the operator's.
    public func mayAccess(_ session: PaymentSession) -> Bool {
        mayAccess(owner: session.owner)
    }

    /// Whether this actor may see and act on what `other` owns: an operator always; otherwise
    /// only what its own principal, or a principal of its tenant, owns (nothing owned by nobody).
    public func mayAccess(owner other: PaymentOwner?) -> Bool {
        if isOperator { return true }
        guard let other else { return false }
        if other.principal == owner.principal { return true }
        if let tenant = owner.tenant, other.tenant == tenant { return true }
        return false
    }

    /// Whether an amount due applies to this actor's payments (and may be read, replaced or
    /// withdrawn by it): one its principal or tenant registered, or one a host without
    /// principals registered (``AmountDue/registeredBy`` `nil`). Another tenant's amount due
    /// neither fixes this actor's charge nor shows to it.
    public func mayUse(_ due: AmountDue) -> Bool {
        due.registeredBy == nil || mayAccess(owner: due.registeredBy)
    }
}
