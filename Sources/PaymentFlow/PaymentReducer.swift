import Foundation
import TwilioPayments

/// The outcome of one event.
public struct Transition: Sendable {
    public var session: PaymentSession
    public var effects: [PaymentEffect]
    /// Set when the event was a request the session cannot honour; the session is unchanged.
    public var rejection: FlowRejection?
    /// Whether the session changed (its version grew).
    public var changed: Bool
    /// Set when the event was a request already under way or done (capturing the item the caller
    /// is typing, completing a session that is completing or completed, cancelling one that is
    /// cancelling or cancelled): the session is unchanged and nothing is to be sent.
    public var repeated: Bool = false
}

/// The payment session's rules, as one pure function: no clock, no network, no randomness.
///
/// - Capture state follows Twilio's word: an item is captured only when a callback for it says
///   `PartialResult=false` with its value, or reports its value (no `PartialResult`) while
///   Twilio's latest `Required` no longer lists it. A capture-time callback (no value) leaves
///   it `capturing`. Every item in Twilio's latest `Required` is missing.
/// - Duplicate and out-of-order callbacks never regress a captured item or a finished session;
///   a callback stamped (`DateUpdated`) before the current attempt began is ignored for that
///   item, and an older `Required` never replaces a newer one.
/// - A failed item (any `ErrorType`) can be captured again, and so can a captured one; the
///   attempt is counted.
/// - The card number comes before the security code, as Twilio requires.
/// - Completion is refused, naming the items, while required items are missing.
/// - Cancel is allowed at any time before the end; the caller hanging up or pressing star
///   ends the session.
/// - A callback that would finish the session (it reports a `Result`) is applied only when its
///   `Sid` and `CallSid` are the session's own payment and call SIDs: without them it is
///   ignored whole, so knowing the callback URL is not enough to end a payment.
/// - Values from callbacks pass through ``Masking`` before they are kept.
public enum PaymentReducer {
    public static func reduce(_ session: PaymentSession, _ event: PaymentEvent) -> Transition {
        // A finished session is final: outcomes, failures and callbacks that arrive late change
        // nothing (requests are refused below, with the reason).
        if session.phase.isFinished {
            switch event {
            case .captureRequested, .completeRequested, .cancelRequested, .recordingsChanged: break
            default: return Transition(session: session, effects: [], rejection: nil, changed: false)
            }
        }
        var next = session
        var effects: [PaymentEffect] = []
        let date: Date
        switch event {
        case .sessionCreated(let sid, let at):
            date = at
            next.inFlight.removeValue(forKey: .create)
            if case .starting = next.phase {
                next.paymentSID = sid
                next.phase = .active(current: nil)
                next.lastRequestError = nil
            }

        case .captureRequested(let item, let at, let key, let restart):
            date = at
            if let rejection = refuseCapture(item, in: session) { return reject(session, rejection) }
            // Twilio accepted the capture (no key left in flight) and the caller is typing, or the item
            // is captured and Twilio does not list it again (it may, after a failed confirmation):
            // a repeat. A request still unanswered is sent again with its stored key instead.
            let accepted = session.inFlight[.capture(item)] == nil
            if !restart,
                (session.state(item).isInProgress && accepted)
                    || (session.state(item).isCaptured && !session.missingItems.contains(item))
            {
                return repeated(session)
            }
            // A restart is a new capture: a fresh key, never a replay of the one it replaces.
            if restart, let key {
                next.inFlight[.capture(item)] = key
            } else {
                remember(key, for: .capture(item), in: &next)
            }
            var progress = next.progress(item)
            progress.state = .requested
            progress.requests += 1
            next.items[item] = progress
            next.phase = .active(current: item)
            effects.append(.send(.capture(item)))

        case .captureAccepted(let item, let at, let twilioDate):
            date = at
            next.lastRequestError = nil
            next.inFlight.removeValue(forKey: .capture(item))
            if let twilioDate, next.state(item).isInProgress {
                // Twilio's answer carries whole seconds: an earlier attempt's callback stamped
                // within the same second is not told apart (it is taken as this attempt's).
                let second = Date(timeIntervalSince1970: twilioDate.timeIntervalSince1970.rounded(.down))
                let start = max(next.progress(item).attemptStart ?? second, second)
                next.items[item]?.attemptStart = start
            }

        case .completeRequested(let at, let key):
            date = at
            // Asked again while it runs, or after it went through: a repeat, answered with the outcome.
            switch session.phase {
            case .completing where session.inFlight[.complete] != nil:
                // Asked while unanswered (its sender may have died): sent again with the stored key.
                effects.append(.send(.complete))
                return Transition(session: session, effects: effects, rejection: nil, changed: false)
            case .completing, .completed: return repeated(session)
            default: break
            }
            if let rejection = refuseCompletion(in: session) { return reject(session, rejection) }
            remember(key, for: .complete, in: &next)
            next.phase = .completing
            effects.append(.send(.complete))

        case .completeAccepted(let at):
            date = at
            next.lastRequestError = nil
            next.inFlight.removeValue(forKey: .complete)

        case .cancelRequested(let at, let key):
            date = at
            switch session.phase {
            case .cancelling where session.inFlight[.cancel] != nil:
                effects.append(.send(.cancel))
                return Transition(session: session, effects: effects, rejection: nil, changed: false)
            case .cancelling, .cancelled:
                return repeated(session)
            case .completed, .failed, .callEnded:
                return reject(session, .finished(phase: session.phase.name))
            case .starting:
                return reject(session, .stillStarting)
            case .active, .completing:
                next.phase = .cancelling
                remember(key, for: .cancel, in: &next)
                effects.append(.send(.cancel))
            }

        case .cancelAccepted(let at):
            date = at
            next.inFlight.removeValue(forKey: .cancel)
            if !session.phase.isFinished {
                next.phase = .cancelled(reason: "cancelled by the agent")
                next.lastRequestError = nil
                for (item, progress) in next.items where progress.state.isInProgress {
                    next.items[item]?.state = .notRequested
                }
            }

        case .requestFailed(let operation, let reason, let at):
            date = at
            next.lastRequestError = reason
            next.inFlight.removeValue(forKey: operation)
            switch operation {
            case .create:
                if case .starting = session.phase {
                    next.phase = .failed(PaymentFailure(reason: "Twilio did not start the payment session: \(reason)"))
                }
            case .capture(let item):
                if next.state(item) == .requested { next.items[item]?.state = .notRequested }
                if case .active(current: item) = next.phase { next.phase = .active(current: nil) }
            case .complete:
                if case .completing = session.phase { next.phase = .active(current: nil) }
            case .cancel:
                if case .cancelling = session.phase { next.phase = .active(current: nil) }
            }

        case .callbackReceived(let callback, let at):
            date = at
            apply(callback, to: &next)

        case .recordingsChanged(let pause, let at):
            date = at
            next.recordings = pause

        case .callEnded(let at, let status):
            date = at
            if !session.phase.isFinished {
                let detail = status.map { " (Twilio reports the call \($0))" } ?? ""
                next.phase = .callEnded(PaymentFailure(reason: "the call ended before the payment finished\(detail)"))
                for (item, progress) in next.items where progress.state.isInProgress {
                    next.items[item]?.state = .notRequested
                }
            }
        }

        let changed = next != session
        if changed {
            next.version = session.version + 1
            next.updatedAt = max(session.updatedAt, date)
        }
        return Transition(session: next, effects: effects, rejection: nil, changed: changed)
    }

    /// Records the key an operation goes out with: the one of an earlier, still unanswered
    /// request of the same operation if there is one (so Twilio sees a retry, not a second
    /// request), else `key`.
    private static func remember(_ key: String?, for operation: PaymentOperation, in session: inout PaymentSession) {
        if session.inFlight[operation] == nil, let key { session.inFlight[operation] = key }
    }

    private static func reject(_ session: PaymentSession, _ rejection: FlowRejection) -> Transition {
        Transition(session: session, effects: [], rejection: rejection, changed: false)
    }

    /// A request that is already under way or done: the session as it is, nothing to send.
    private static func repeated(_ session: PaymentSession) -> Transition {
        Transition(session: session, effects: [], rejection: nil, changed: false, repeated: true)
    }

    private static func refuseCapture(_ item: PaymentItem, in session: PaymentSession) -> FlowRejection? {
        switch session.phase {
        case .active:
            break
        case .starting:
            return .stillStarting
        case .completing:
            return .completing
        case .cancelling:
            return .cancelling
        case .completed, .cancelled, .failed, .callEnded:
            return .finished(phase: session.phase.name)
        }
        let method = session.configuration.paymentMethod
        guard session.configuration.applicableItems.contains(item) else {
            return .notApplicable(item, method)
        }
        if item == .securityCode, !session.state(.cardNumber).isCaptured {
            return .outOfOrder(item, first: .cardNumber)
        }
        if item.isMatcher, !session.state(item.base).isCaptured {
            return .outOfOrder(item, first: item.base)
        }
        if case .active(let current?) = session.phase, current != item, session.state(current).isInProgress {
            return .itemInProgress(current, requested: item)
        }
        return nil
    }

    private static func refuseCompletion(in session: PaymentSession) -> FlowRejection? {
        switch session.phase {
        case .active:
            break
        case .completing:
            return .completing
        case .starting:
            return .stillStarting
        case .cancelling:
            return .cancelling
        case .completed, .cancelled, .failed, .callEnded:
            return .finished(phase: session.phase.name)
        }
        if let inProgress = PaymentItem.allCases.first(where: { session.state($0).isInProgress }) {
            return .itemInProgress(inProgress, requested: nil)
        }
        let missing = session.missingItems
        if !missing.isEmpty { return .itemsMissing(missing) }
        return nil
    }

    /// The callback field that carries `item`'s value.
    static func reportedValue(of item: PaymentItem, in callback: PaymentStatusCallback) -> String? {
        switch item.base {
        case .cardNumber: return callback.paymentCardNumber
        case .securityCode: return callback.securityCode
        case .expirationDate: return callback.expirationDate
        case .postalCode: return callback.paymentCardPostalCode
        case .bankRoutingNumber: return callback.bankRoutingNumber
        default: return callback.bankAccountNumber
        }
    }

    /// Whether a callback stamped `stamp` is not older than one stamped `reference` (either
    /// unknown: order of arrival decides, so it is not older).
    private static func isNotOlder(_ stamp: Date?, than reference: Date?) -> Bool {
        guard let stamp, let reference else { return true }
        return stamp >= reference
    }

    private static func apply(_ callback: PaymentStatusCallback, to session: inout PaymentSession) {
        if let sid = callback.paymentSID, let own = session.paymentSID, sid != own { return }
        // Ending a payment takes naming it as Twilio does (a session without its SID yet cannot
        // be finished by a callback: nothing to compare with).
        if callback.finishesSession,
            callback.paymentSID == nil || callback.paymentSID != session.paymentSID
                || callback.callSID != session.callSID
        {
            return
        }
        if session.phase.isFinished { return }
        if session.paymentSID == nil, let sid = callback.paymentSID { session.paymentSID = sid }
        if case .starting = session.phase, callback.paymentSID != nil { session.phase = .active(current: nil) }

        if let cardType = callback.paymentCardType { session.cardType = cardType }
        let applicable = session.configuration.applicableItems
        let stamp = callback.dateUpdated

        // Twilio's latest `Required` is the truth about what is missing.
        var requiredApplied = false
        if callback.hasRequired, isNotOlder(stamp, than: session.requiredReportedAt) {
            let listed = callback.required.filter(applicable.contains)
                .reduce(into: [PaymentItem]()) { if !$0.contains($1) { $0.append($1) } }
            session.unrecognizedRequired = callback.unrecognizedRequired
            // Tokens that did not parse never empty the list: the previous one stands.
            if !listed.isEmpty || callback.unrecognizedRequired.isEmpty {
                session.required = listed
                session.requiredFromTwilio = true
                session.requiredReportedAt = stamp ?? session.requiredReportedAt
                requiredApplied = true
            }
        }

        // The item being captured.
        if let item = callback.capture, applicable.contains(item),
            case .active = session.phase
        {
            var progress = session.progress(item)
            let stale = progress.attemptStart.map { start in stamp.map { $0 < start } ?? false } ?? false
            // A callback of this attempt proves Twilio accepted its capture, even if the answer to
            // the request was never stored (its sender died): the key is no longer in flight.
            if progress.state.isInProgress, !stale { session.inFlight.removeValue(forKey: .capture(item)) }
            if progress.state.isInProgress, !stale {
                let reported = reportedValue(of: item, in: callback).map { Masking.value($0, for: item) }
                let previous: String? = if case .capturing(let masked) = progress.state { masked } else { nil }
                let stillRequired = callback.hasRequired ? callback.required.contains(item) : nil
                if let errorType = callback.errorType, errorType != .sessionInProgress {
                    progress.state = .failed(errorType)
                    progress.failedAttempts += 1
                    session.lastError = errorType
                } else if callback.partialResult == false, reported != nil || stillRequired != true {
                    progress.state = .captured(masked: reported ?? previous)
                } else if callback.partialResult == nil, reported != nil, stillRequired == false {
                    progress.state = .captured(masked: reported)
                } else {
                    if reported == nil, callback.errorType == nil, let stamp {
                        // The capture-time callback: it marks, by Twilio's clock, where this attempt began.
                        progress.attemptStart = max(progress.attemptStart ?? stamp, stamp)
                    }
                    progress.state = .capturing(masked: reported ?? previous)
                }
                progress.lastPartialResult = callback.partialResult
            }
            session.items[item] = progress
            // The last error stands until no item is left in a failed state.
            if !session.items.values.contains(where: { if case .failed = $0.state { true } else { false } }) {
                session.lastError = nil
            }
            if case .active(let current) = session.phase, current == item || current == nil {
                session.phase = .active(current: progress.state.isInProgress ? item : nil)
            }
        } else if let errorType = callback.errorType, callback.capture == nil {
            session.lastError = errorType
        }

        // A value reported without `PartialResult=true`, for an item Twilio's latest `Required`
        // no longer lists, is captured (the reading in which the last callback of an item
        // carries no `PartialResult`).
        if requiredApplied {
            for (item, progress) in session.items {
                if case .capturing(let masked?) = progress.state, progress.lastPartialResult != true,
                    !session.required.contains(item)
                {
                    session.items[item]?.state = .captured(masked: masked)
                    if case .active(item) = session.phase { session.phase = .active(current: nil) }
                }
            }
        }

        guard let result = callback.result else { return }
        switch result {
        case .success:
            session.phase = .completed(
                PaymentOutcome(
                    result: result, confirmationCode: callback.paymentConfirmationCode,
                    token: callback.paymentToken, profileID: callback.profileID))
        case .callerInterruptedWithStar:
            session.phase = .cancelled(reason: "the caller pressed star to leave the payment")
        case .callerHungUp:
            session.phase = .callEnded(PaymentFailure(result: result, reason: "the caller hung up"))
        default:
            if case .cancelling = session.phase {
                session.phase = .cancelled(reason: "cancelled by the agent")
                return
            }
            let reason: String
            switch result {
            case .paymentConnectorError:
                reason =
                    "the payment was declined or failed at the payment processor"
                    + (callback.paymentError.map { ": \($0)" } ?? "")
                    + (callback.payErrorCode.flatMap { TwilioErrorCatalog.entries[$0]?.meaning }.map { " (\($0))" }
                        ?? "")
            case .validationError: reason = "Twilio rejected the payment information as invalid"
            case .tooManyFailedAttempts: reason = "the caller made too many failed attempts"
            case .internalError: reason = "Twilio reported an internal error"
            default: reason = "the payment ended with result \(result.rawValue)"
            }
            session.phase = .failed(
                PaymentFailure(
                    result: result, paymentError: callback.paymentError, payErrorCode: callback.payErrorCode,
                    connectorError: callback.connectorError, reason: reason))
        }
    }
}
