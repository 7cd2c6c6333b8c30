import Synchronization
public import Tracing

/// The trace context each call's payment was started under (the caller's tool call), by call
/// SID, so that what happens to the payment later points back to it: a callback's trace links
/// to it, a notification of the payment's change is a span in it. Keyed by call because the
/// call is known before Twilio has named the payment, and Twilio's first callbacks may arrive
/// before the start command has returned.
///
/// Kept in memory, for the most recent `capacity` calls (the oldest is forgotten first): a
/// replica that did not start a payment has nothing to point to and its spans stand alone.
public final class PaymentTraces: Sendable {
    private struct State {
        var contexts: [String: ServiceContext] = [:]
        var order: [String] = []
        var next = 0
    }
    private let state = Mutex(State())
    /// The most payments remembered.
    public let capacity: Int

    /// An empty memory of at most `capacity` payments.
    public init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
    }

    /// Remembers `context` as the trace the payment on `callSID` was started in (the newest
    /// start on a call wins).
    public func remember(_ context: ServiceContext, forCall callSID: String) {
        state.withLock { state in
            guard state.contexts.updateValue(context, forKey: callSID) == nil else { return }
            if state.order.count < capacity {
                state.order.append(callSID)
            } else {
                state.contexts[state.order[state.next]] = nil
                state.order[state.next] = callSID
                state.next = (state.next + 1) % capacity
            }
        }
    }

    /// The trace the payment on `callSID` was started in, if this process started it and
    /// remembers it.
    public func context(ofCall callSID: String) -> ServiceContext? {
        state.withLock { $0.contexts[callSID] }
    }

    /// How many calls are remembered.
    public var count: Int { state.withLock { $0.contexts.count } }
}

/// The span of the callback this task is applying, if any: its store requests become events on
/// it rather than spans of their own.
enum CallbackSpan {
    @TaskLocal static var current: (any Span)?
}
