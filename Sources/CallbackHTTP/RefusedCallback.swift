/// A callback the receiver refused, for ``CallbackReceiverConfiguration/onRefusal``.
public struct RefusedCallback: Sendable, Equatable {
    /// Why, as the callback metrics name it (`bad_signature`, `unknown_session`, `malformed`, …).
    public var reason: String
    /// The HTTP status it was answered with.
    public var status: Int
    /// The sender's address, when the host's request context tells it.
    public var origin: String?
    /// Refusals left out since the last one reported (past ten a second).
    public var unreported: Int

    public init(reason: String, status: Int, origin: String?, unreported: Int) {
        self.reason = reason
        self.status = status
        self.origin = origin
        self.unreported = unreported
    }
}
