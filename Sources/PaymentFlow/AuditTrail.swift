import CoreMetrics
import Foundation

/// Where audit records are kept: append-only, chained (``AuditRecord``). The coordinator
/// appends one for every command and callback; a host appends its own (start-up, refused
/// authentication). PostgreSQL keeps them in a table (PaymentStorePostgres); without it,
/// ``JSONLinesAuditTrail`` writes JSON lines to a file or a stream.
public protocol AuditTrail: Sendable {
    /// Appends `entry` after the newest record and returns once it is kept.
    func append(_ entry: AuditEntry) async throws(AuditTrailError)
}

extension AuditTrail {
    /// Appends `entry`; one that cannot be kept fails nothing that already happened: it is
    /// counted (`agent_payments_audit_failures_total`) and the trail logs why.
    public func record(_ entry: AuditEntry) async {
        do {
            try await append(entry)
        } catch {
            Counter(label: "agent_payments_audit_failures_total").increment()
        }
    }
}

/// An audit record could not be kept.
public struct AuditTrailError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
