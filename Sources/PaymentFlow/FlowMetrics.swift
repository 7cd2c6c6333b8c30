import CoreMetrics
import Foundation
import TwilioPayments

/// What the flow counts, through swift-metrics: the host bootstraps a backend (agent-payments
/// chooses Prometheus); without one, nothing is recorded. Labels are bounded: methods, items,
/// phases and Twilio's documented values (an undocumented one is `other`), never a SID, token or
/// amount. Each change is counted by the one writer whose compare-and-set stored it, so replicas
/// sharing a store count each payment once between them.
enum FlowMetrics {
    /// A session was stored for the first time.
    static func started(_ session: PaymentSession) {
        Counter(label: "agent_payments_payments_started_total", dimensions: [("method", method(session))])
            .increment()
    }

    /// `old` became `new` (stored at `now`): finished payments, captured and failed items, and
    /// how long an item took from its capture request (by Twilio's clock, whole seconds).
    static func changed(from old: PaymentSession, to new: PaymentSession, at now: Date) {
        if !old.phase.isFinished, new.phase.isFinished {
            Counter(
                label: "agent_payments_payments_finished_total",
                dimensions: [("method", method(new)), ("outcome", new.phase.kind.rawValue), ("error", errorClass(new))]
            ).increment()
        }
        for (item, progress) in new.items {
            let before = old.progress(item)
            if progress.state.isCaptured, !before.state.isCaptured {
                captured(item, result: "captured")
                if let start = progress.attemptStart {
                    CoreMetrics.Timer(
                        label: "agent_payments_capture_duration_seconds", dimensions: [("item", item.rawValue)]
                    )
                    .recordInterval(since: start, now: now)
                }
            }
            if progress.failedAttempts > before.failedAttempts, case .failed(let error) = progress.state {
                captured(item, result: label(error))
            }
        }
    }

    /// A stranded start was settled (`recovered`: Twilio answered its creation sent again;
    /// `failed`: Twilio refused it; `call-ended`) or could not be (`unresolved`: the store or
    /// the callback URL was away; tried again next round), in `agent_payments_stranded_starts_total`.
    static func strandedStart(outcome: String) {
        Counter(label: "agent_payments_stranded_starts_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// The call's recordings were paused, resumed, or could not be, in
    /// `agent_payments_recordings_total` by `outcome` (`paused`, `pause_failed`, `resumed`,
    /// `resume_failed`).
    static func recordings(_ outcome: String) {
        Counter(label: "agent_payments_recordings_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// A long poll began (`true`) or stopped (`false`) waiting: `agent_payments_long_polls_waiting`
    /// counts those waiting now.
    static func longPollWaiting(_ waiting: Bool) {
        let meter = Meter(label: "agent_payments_long_polls_waiting")
        if waiting { meter.increment() } else { meter.decrement() }
    }

    /// A long poll that waited ended: woken by a change (`changed`), or at its timeout
    /// (`timed_out`), in `agent_payments_long_polls_total`.
    static func longPollEnded(changed: Bool) {
        Counter(label: "agent_payments_long_polls_total", dimensions: [("outcome", changed ? "changed" : "timed_out")])
            .increment()
    }

    private static func captured(_ item: PaymentItem, result: String) {
        Counter(
            label: "agent_payments_captures_total", dimensions: [("item", item.rawValue), ("result", result)]
        ).increment()
    }

    private static func method(_ session: PaymentSession) -> String {
        session.configuration.paymentMethod.rawValue
    }

    /// `none`, the Twilio `Result` of a failure, or the class of its `PayErrorCode` (`640xx`).
    private static func errorClass(_ session: PaymentSession) -> String {
        switch session.phase {
        case .failed(let failure), .callEnded(let failure):
            if let code = failure.payErrorCode, (10_000...99_999).contains(code) { return "\(code / 100)xx" }
            if let result = failure.result {
                return PaymentResult.documented.contains(result) ? result.rawValue : "other"
            }
            return "unspecified"
        default:
            return "none"
        }
    }

    private static func label(_ error: PaymentErrorType) -> String {
        PaymentErrorType.documented.contains(error) ? error.rawValue : "other"
    }
}

extension CoreMetrics.Timer {
    /// Records the time from `start` to `now` (nothing when `now` is earlier).
    fileprivate func recordInterval(since start: Date, now: Date) {
        let seconds = now.timeIntervalSince(start)
        guard seconds >= 0 else { return }
        recordNanoseconds(Int64(seconds * 1_000_000_000))
    }
}
