/// The actions this server records.
public enum AuditAction: String, Sendable, CaseIterable {
    case paymentStart = "payment.start"
    case paymentCapture = "payment.capture"
    case paymentComplete = "payment.complete"
    case paymentCancel = "payment.cancel"
    /// A start stranded by a replica that died, settled by another (or the same, restarted).
    case startRecovered = "payment.start.recovered"
    case callbackAccepted = "callback.accepted"
    case callbackRefused = "callback.refused"
    case callEnded = "call.ended"
    case configurationLoaded = "configuration.loaded"
    case authenticationRefused = "authentication.refused"
}
