/// The one in-memory stand-in for Twilio's Payments API that the unit tests share: it records
/// every call (operation, idempotency key, StatusCallback URL), hands out payment SIDs, and can
/// fail, hold or refuse calls on purpose.
import Foundation
import Synchronization
public import TwilioPayments

/// A stand-in for Twilio's Payments API that records every call and can fail on purpose.
public final class FakePaymentsAPI: TwilioPaymentsAPI {
    /// One call as Twilio would have received it.
    public struct Call: Sendable, Equatable {
        public var operation: String
        public var idempotencyKey: String
        public var statusCallback: String
    }

    public init() {}

    private let state = Mutex<(calls: [Call], failNext: TwilioError?, nextSID: Int)>(([], nil, 0))

    public var calls: [Call] { state.withLock { $0.calls } }

    public func failNext(with error: TwilioError) { state.withLock { $0.failNext = error } }

    /// Creates (or updates) wait here while held, so a test can act while one is in flight.
    private let gate = Mutex<
        (held: Set<Bool>, waiting: [CheckedContinuation<Void, Never>], arrivals: AsyncStream<Void>.Continuation?)
    >(([], [], nil))

    /// From now on, every create waits (after it is recorded) until ``releaseCreates()``; the
    /// stream yields once for each create that arrives at the gate.
    public func holdCreates() -> AsyncStream<Void> { hold(creates: true) }

    public func releaseCreates() { release() }

    /// From now on, every update (capture, complete, cancel) waits, after it is recorded, until
    /// ``releaseUpdates()``; the stream yields once for each that arrives at the gate.
    public func holdUpdates() -> AsyncStream<Void> { hold(creates: false) }

    public func releaseUpdates() { release() }

    private func hold(creates: Bool) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        gate.withLock { $0 = ([creates], [], continuation) }
        return stream
    }

    private func release() {
        let waiting = gate.withLock { gate -> [CheckedContinuation<Void, Never>] in
            gate.held = []
            defer { gate.waiting = [] }
            return gate.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Updates this decides to refuse, every time (for example a method the connector lacks).
    private let refusals = Mutex<[@Sendable (PaymentUpdate) -> TwilioError?]>([])

    /// From now on, every update for which `rule` gives an error is refused with it.
    public func refuse(when rule: @escaping @Sendable (PaymentUpdate) -> TwilioError?) {
        refusals.withLock { $0.append(rule) }
    }

    /// The StatusCallback URL of every call, in order.
    public var statusCallbacks: [String] { calls.map(\.statusCallback) }

    private func record(_ operation: String, key: String, url: String) async throws(TwilioError) -> Int {
        let (failure, number) = state.withLock { state -> (TwilioError?, Int) in
            state.calls.append(Call(operation: operation, idempotencyKey: key, statusCallback: url))
            defer { state.failNext = nil }
            if operation == "create" { state.nextSID += 1 }
            return (state.failNext, state.nextSID)
        }
        do {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let arrivals = gate.withLock { gate -> AsyncStream<Void>.Continuation?? in
                    guard gate.held.contains(operation == "create") else { return .none }
                    gate.waiting.append(continuation)
                    return .some(gate.arrivals)
                }
                switch arrivals {
                case .none: continuation.resume()
                case .some(let stream): stream?.yield()
                }
            }
        }
        if let failure { throw failure }
        return number
    }

    public func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        let number = try await record("create", key: idempotencyKey, url: statusCallback)
        let hex = String(number, radix: 16)
        let sid = PaymentSID(validated: "PK" + String(repeating: "0", count: 32 - hex.count) + hex)
        return PaymentResource(
            accountSID: nil, callSID: callSID, sid: sid, dateCreated: nil, dateUpdated: nil, uri: nil)
    }

    public func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource {
        let name: String
        switch update {
        case .capture(let item): name = "capture:\(item.rawValue)"
        case .status(let status): name = "status:\(status.rawValue)"
        }
        _ = try await record(name, key: idempotencyKey, url: statusCallback)
        if let refusal = refusals.withLock({ $0 }).lazy.compactMap({ $0(update) }).first { throw refusal }
        return PaymentResource(
            accountSID: nil, callSID: callSID, sid: paymentSID, dateCreated: nil, dateUpdated: nil, uri: nil)
    }

    /// What ``fetchCall(_:)`` answers: `in-progress` unless set.
    private let callStatus = Mutex<String>("in-progress")

    public func setCallStatus(_ status: String) { callStatus.withLock { $0 = status } }

    public func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        CallResource(sid: callSID, rawStatus: callStatus.withLock { $0 })
    }
}
