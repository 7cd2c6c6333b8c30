import Foundation
import Synchronization
@testable import PaymentFlow
import TwilioPayments

enum Sample {
    static let call = CallSID(validated: "CA" + String(repeating: "1", count: 32))
    static let otherCall = CallSID(validated: "CA" + String(repeating: "2", count: 32))
    static let payment = PaymentSID(validated: "PK" + String(repeating: "a", count: 32))
    static let date = Date(timeIntervalSince1970: 1_800_000_000)

    /// A card session already created (active).
    static func cardSession(_ options: PaymentSessionOptions = PaymentSessionOptions(chargeAmount: "9.99")) -> PaymentSession {
        let fresh = PaymentSession(callSID: call, configuration: PaymentConfiguration(options: options), at: date)
        return PaymentReducer.reduce(fresh, .sessionCreated(payment, at: date)).session
    }

    static func achSession() -> PaymentSession {
        cardSession(PaymentSessionOptions(paymentMethod: .achDebit, bankAccountType: .consumerChecking))
    }

    /// Hundredths of a second after `date` for the next callback's `DateUpdated`: Twilio stamps every
    /// callback, so callbacks made one after another are stamped in that order.
    private static let ticks = Mutex<Int>(0)

    /// The `DateUpdated` text for the next callback.
    static func nextStamp() -> String {
        let tick = ticks.withLock { tick -> Int in
            tick += 1
            return tick
        }
        return Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date.addingTimeInterval(Double(tick) / 100))
    }

    /// A callback with these fields, stamped after every earlier one unless `DateUpdated` is
    /// given (an empty `DateUpdated` leaves it out).
    static func callback(_ fields: [String: String], sid: PaymentSID = payment) -> PaymentStatusCallback {
        var all = fields
        all["Sid"] = sid.rawValue
        all["CallSid"] = call.rawValue
        if all["DateUpdated"] == nil { all["DateUpdated"] = nextStamp() }
        if all["DateUpdated"] == "" { all.removeValue(forKey: "DateUpdated") }
        return PaymentStatusCallback(fields: all.sorted { $0.key < $1.key })
    }

    /// Callbacks Twilio sends while the caller types `value` for `item`.
    static func typing(_ item: PaymentItem, field: String, masked: [String], cardType: String? = nil, required: String) -> [PaymentStatusCallback] {
        var callbacks = masked.dropLast().map { callback(["Capture": item.rawValue, "PartialResult": "true", field: $0]) }
        var last = ["Capture": item.rawValue, "PartialResult": "false", field: masked.last!, "Required": required]
        if let cardType { last["PaymentCardType"] = cardType }
        callbacks.append(callback(last))
        return callbacks
    }
}

/// Applies events in order, asserting nothing.
func run(_ session: PaymentSession, _ events: [PaymentEvent]) -> PaymentSession {
    events.reduce(session) { PaymentReducer.reduce($0, $1).session }
}

/// A stand-in for Twilio's Payments API that records every call and can fail on purpose.
final class FakePaymentsAPI: TwilioPaymentsAPI {
    struct Call: Sendable, Equatable {
        var operation: String
        var idempotencyKey: String
        var statusCallback: String
    }

    private let state = Mutex<(calls: [Call], failNext: TwilioError?, nextSID: Int, delay: Duration)>(([], nil, 0, .zero))

    var calls: [Call] { state.withLock { $0.calls } }

    func failNext(with error: TwilioError) { state.withLock { $0.failNext = error } }

    func setDelay(_ delay: Duration) { state.withLock { $0.delay = delay } }

    /// Creates wait here while held, so a test can act while one is in flight.
    private let gate = Mutex<(held: Bool, waiting: [CheckedContinuation<Void, Never>], arrivals: AsyncStream<Void>.Continuation?)>((false, [], nil))

    /// From now on, every create waits (after it is recorded) until ``releaseCreates()``; the
    /// stream yields once for each create that arrives at the gate.
    func holdCreates() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        gate.withLock { $0 = (true, [], continuation) }
        return stream
    }

    func releaseCreates() {
        let waiting = gate.withLock { gate -> [CheckedContinuation<Void, Never>] in
            gate.held = false
            defer { gate.waiting = [] }
            return gate.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    private func record(_ operation: String, key: String, url: String) async throws(TwilioError) -> Int {
        let (failure, number, delay) = state.withLock { state -> (TwilioError?, Int, Duration) in
            state.calls.append(Call(operation: operation, idempotencyKey: key, statusCallback: url))
            defer { state.failNext = nil }
            if operation == "create" { state.nextSID += 1 }
            return (state.failNext, state.nextSID, state.delay)
        }
        if operation == "create" {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let arrivals = gate.withLock { gate -> AsyncStream<Void>.Continuation?? in
                    guard gate.held else { return .none }
                    gate.waiting.append(continuation)
                    return .some(gate.arrivals)
                }
                switch arrivals {
                case .none: continuation.resume()
                case .some(let stream): stream?.yield()
                }
            }
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        if let failure { throw failure }
        return number
    }

    func createPayment(callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String,
                       statusCallback: String) async throws(TwilioError) -> PaymentResource {
        let number = try await record("create", key: idempotencyKey, url: statusCallback)
        let hex = String(number, radix: 16)
        let sid = PaymentSID(validated: "PK" + String(repeating: "0", count: 32 - hex.count) + hex)
        return PaymentResource(accountSID: nil, callSID: callSID, sid: sid, dateCreated: nil, dateUpdated: nil, uri: nil)
    }

    func updatePayment(callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
                       statusCallback: String) async throws(TwilioError) -> PaymentResource {
        let name: String
        switch update {
        case .capture(let item): name = "capture:\(item.rawValue)"
        case .status(let status): name = "status:\(status.rawValue)"
        }
        _ = try await record(name, key: idempotencyKey, url: statusCallback)
        return PaymentResource(accountSID: nil, callSID: callSID, sid: paymentSID, dateCreated: nil, dateUpdated: nil, uri: nil)
    }

    /// What ``fetchCall(_:)`` answers: `in-progress` unless set.
    private let callStatus = Mutex<String>("in-progress")

    func setCallStatus(_ status: String) { callStatus.withLock { $0 = status } }

    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        CallResource(sid: callSID, rawStatus: callStatus.withLock { $0 })
    }
}
