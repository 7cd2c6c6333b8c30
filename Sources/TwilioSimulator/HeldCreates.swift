import Synchronization

extension TwilioSimulator {
    /// Where a held payment creation stops, for tests of a client that dies before Twilio's
    /// answer reaches it. Both readings of such a death are real: the request may never have
    /// reached Twilio, or Twilio may have created the payment and the answer been lost.
    public enum CreateHold: String, Sendable, CaseIterable {
        /// Before any effect: nothing is created until the request is released.
        case beforeEffect = "before"
        /// After the effect: the payment is created (its IdempotencyKey remembered, so a
        /// repeat is answered at once with it), and only the answer waits for the release.
        case afterEffect = "after"
    }

    /// Holds the next `count` payment creations as `hold` says, until ``releaseCreates()``;
    /// `nil` stops holding new ones (those held stay held).
    public func holdCreates(_ hold: CreateHold?, count: Int = 1) {
        held.withLock { $0.pending = hold.flatMap { count > 0 ? ($0, count) : nil } }
    }

    /// Answers every held creation (a released `beforeEffect` one takes effect now, or is
    /// answered as its IdempotencyKey's first request was if that was repeated meanwhile).
    public func releaseCreates() {
        let waiting = held.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// How many creations are held now.
    public var heldCreates: Int { held.withLock { $0.waiting.count } }

    /// The hold for a creation arriving now, counting it down.
    func takeCreateHold() -> CreateHold? {
        held.withLock { state in
            guard let (hold, remaining) = state.pending else { return nil }
            state.pending = remaining > 1 ? (hold, remaining - 1) : nil
            return hold
        }
    }

    /// Waits until ``releaseCreates()``; told to `configuration.onCreateHeld` once waiting.
    func waitForRelease(_ hold: CreateHold) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            held.withLock { $0.waiting.append(continuation) }
            configuration.onCreateHeld?(hold)
        }
    }
}

/// The creations held and to be held (``TwilioSimulator/holdCreates(_:count:)``).
struct HeldCreates {
    var pending: (TwilioSimulator.CreateHold, Int)?
    var waiting: [CheckedContinuation<Void, Never>] = []
}
