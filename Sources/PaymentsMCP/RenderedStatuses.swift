import MCPCore
import PaymentFlow
import Synchronization

/// The status of each session's latest version, built, redacted, checked and serialized once: an agent
/// polls `getPaymentStatus` or reads the resource many times per version, and a version
/// identifies its content (every change makes a new one; the next step follows from the state).
/// Bounded: past `limit` sessions (agents poll a few at a time), the oldest-rendered half is
/// dropped.
final class RenderedStatuses: Sendable {
    struct Entry: Sendable {
        var version: UInt64
        /// The redacted status object (`structuredContent`).
        var status: JSONValue
        /// `status`, serialized (the resource's text; tool results add their own members).
        var text: String
        /// Whether `status` matched ``SessionJSON/schema`` when it was rendered (checked once per
        /// version; the engine then need not check every tool result).
        var conforms: Bool
        /// The tool result of a plain status read (the status and the next step's instruction
        /// as `message`), with its text block serialized once per version.
        var plain: ToolResult
    }

    private let entries = Mutex<(byID: [String: Entry], order: [String])>(([:], []))
    private let limit: Int

    init(limit: Int = 256) {
        self.limit = limit
    }

    /// The rendering of `session`'s version, from `render` the first time.
    func status(of session: PaymentSession, _ render: () -> Entry) -> Entry {
        if let entry = entries.withLock({ $0.byID[session.id] }), entry.version == session.version { return entry }
        let entry = render()
        entries.withLock { entries in
            if entries.byID.updateValue(entry, forKey: session.id) == nil { entries.order.append(session.id) }
            if entries.order.count > limit {
                let dropped = entries.order.prefix(limit / 2)
                for id in dropped { entries.byID.removeValue(forKey: id) }
                entries.order.removeFirst(dropped.count)
            }
        }
        return entry
    }
}
