import TwilioPayments

extension PaymentCoordinator {
    /// Appends `entry` to the audit trail, if there is one (``AuditTrail/record(_:)``).
    nonisolated(nonsending) func record(_ entry: AuditEntry) async {
        await audit?.record(entry)
    }

    /// Records `command` by `actor` with `outcome`, naming the session it concerned.
    func record(_ command: PaymentCommand, as actor: PaymentActor?, outcome: String, session: PaymentSession?) async {
        guard audit != nil else { return }
        let action: AuditAction
        var callSID: CallSID? = session?.callSID
        var paymentSID: PaymentSID? = session?.paymentSID
        var detail: String?
        switch command {
        case .start(let call, let options, _):
            action = .paymentStart
            callSID = callSID ?? call
            detail = options.auditDetail
        case .capture(let item, let payment, let call, let restart):
            action = .paymentCapture
            (callSID, paymentSID) = (callSID ?? call, paymentSID ?? payment)
            detail = item.rawValue + (restart ? " (restart)" : "")
        case .complete(let payment, let call):
            action = .paymentComplete
            (callSID, paymentSID) = (callSID ?? call, paymentSID ?? payment)
        case .cancel(let payment, let call):
            action = .paymentCancel
            (callSID, paymentSID) = (callSID ?? call, paymentSID ?? payment)
        }
        await record(
            AuditEntry(
                at: now(), replica: replica, actor: actor?.owner.description ?? "host", action: action.rawValue,
                outcome: outcome, callSID: callSID?.rawValue, paymentSID: paymentSID?.rawValue, origin: actor?.origin,
                detail: detail))
    }
}

extension FlowError {
    /// A short, bounded name of the refusal for the audit trail (no free text from outside).
    var auditReason: String {
        switch self {
        case .rejected: return "rejected by the flow"
        case .invalidOptions: return "invalid options"
        case .invalidArgument: return "invalid argument"
        case .conflict: return "conflict"
        case .sessionGone: return "session gone"
        case .sessionInProgress: return "session in progress"
        case .unknownSession: return "unknown session"
        case .wrongCall: return "wrong call"
        case .twilio(let error): return "twilio error \(error.code.map { String($0) } ?? "-")"
        case .callbackUnavailable: return "no callback URL"
        case .callEnded: return "call ended"
        case .policy: return "spending policy"
        case .callBusy: return "call busy"
        case .storeUnavailable: return "store unavailable"
        case .recordingsNotPaused: return "recordings not paused"
        }
    }
}

extension PaymentSessionOptions {
    /// What a start asked for, without amounts' owners or anything secret: method and amount.
    var auditDetail: String {
        let method = (paymentMethod ?? .creditCard).rawValue
        guard let amount = chargeAmount else { return method + " tokenize" }
        return method + " charge " + amount + (currency.map { " " + $0 } ?? "")
    }
}

extension PaymentStatusCallback {
    /// What a callback said, by Twilio's names only (never a masked value).
    var auditDetail: String? {
        var parts: [String] = []
        if let capture { parts.append("capture \(capture.rawValue)") }
        if let result { parts.append("result \(result.rawValue)") }
        if let errorType { parts.append("error \(errorType.rawValue)") }
        if let payErrorCode { parts.append("pay error \(payErrorCode)") }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}
