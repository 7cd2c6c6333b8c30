import Foundation
import Hummingbird
public import TwilioPayments

extension TwilioSimulator {
    private static let enums: [String: Set<String>] = [
        "PaymentMethod": Set(PaymentMethod.allCases.map(\.rawValue)),
        "TokenType": Set(TokenType.allCases.map(\.rawValue)),
        "BankAccountType": Set(BankAccountType.allCases.map(\.rawValue)),
        "Capture": Set(PaymentItem.allCases.map(\.rawValue)),
        "Status": Set(PaymentSessionStatus.allCases.map(\.rawValue)),
        "SecurityCode": ["true", "false"], "PostalCode": ["true", "false"], "Confirmation": ["true", "false"],
        "Input": ["dtmf"],
    ]

    private static let createFields: Set<String> = [
        "IdempotencyKey", "StatusCallback", "BankAccountType", "ChargeAmount", "Currency", "Description", "Input",
        "MinPostalCodeLength",
        "Parameter", "PaymentConnector", "PaymentMethod", "PostalCode", "SecurityCode", "Timeout", "TokenType",
        "ValidCardTypes",
        "RequireMatchingInputs", "Confirmation",
    ]

    /// Checks what both create and update require.
    private func checkCommon(_ form: [String: String]) throws {
        guard let key = form["IdempotencyKey"], !key.isEmpty else {
            throw Failure(status: .badRequest, code: 20001, message: "Missing required parameter IdempotencyKey")
        }
        guard let callback = form["StatusCallback"], !callback.isEmpty else {
            throw Failure(status: .badRequest, code: 20001, message: "Missing required parameter StatusCallback")
        }
        guard let url = URL(string: callback), let scheme = url.scheme?.lowercased(), let host = url.host else {
            throw Failure(status: .badRequest, code: 64016, message: "StatusCallback must be an absolute URL")
        }
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1"
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw Failure(status: .badRequest, code: 64016, message: "StatusCallback must be an https URL")
        }
        for (name, allowed) in Self.enums {
            if let value = form[name], !allowed.contains(value) {
                throw Failure(status: .badRequest, code: 64020, message: "Invalid value \(value) for \(name)")
            }
        }
    }

    func create(form pairs: [(String, String)], call callText: String) throws -> (HTTPResponse.Status, String) {
        let form = Dictionary(pairs, uniquingKeysWith: { _, last in last })
        try checkCommon(form)
        if let unknown = form.keys.first(where: { !Self.createFields.contains($0) }) {
            throw Failure(status: .badRequest, code: 20001, message: "Unknown parameter \(unknown)")
        }
        if let amount = form["ChargeAmount"] {
            guard let value = Double(amount), value >= 0, value < 1_000_000 else {
                throw Failure(status: .badRequest, code: 64003, message: "Invalid charge amount \(amount)")
            }
        }
        if let connector = form["PaymentConnector"], !configuration.connectors.contains(connector) {
            throw Failure(status: .badRequest, code: 64004, message: "Invalid Pay Connector \(connector)")
        }
        let method = form["PaymentMethod"] ?? "credit-card"
        if form["BankAccountType"] != nil, method != "ach-debit" {
            throw Failure(status: .badRequest, code: 64017, message: "BankAccountType is only valid with ach-debit")
        }
        if let timeout = form["Timeout"], !(Int(timeout).map { (1...600).contains($0) } ?? false) {
            throw Failure(status: .badRequest, code: 64020, message: "Invalid Timeout \(timeout)")
        }
        if let types = form["ValidCardTypes"] {
            let known = Set(CardType.allCases.map(\.rawValue))
            if types.split(separator: " ").contains(where: { !known.contains(String($0)) }) {
                throw Failure(status: .badRequest, code: 64020, message: "Invalid ValidCardTypes \(types)")
            }
        }
        let callSID = CallSID(callText)!
        let now = Date()
        let (payment, created) = try state.withLock { state -> (PaymentSID, Payment) in
            if state.calls[callSID] == nil, configuration.acceptsUnknownCalls {
                state.calls[callSID] = makeCall(callSID, .default, in: &state)
            }
            guard let call = state.calls[callSID] else {
                throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
            }
            guard call.status == "in-progress" else {
                throw Failure(status: .badRequest, code: 21220, message: "Call is not in-progress")
            }
            if let active = call.activePayment, state.payments[active]?.finished == false {
                throw Failure(
                    status: .badRequest, code: 64021,
                    message: "Invalid operation: a payment session is already in progress on this call")
            }
            state.nextNumber += 1
            let sid = makeSID(PaymentSID.self, state.nextNumber)
            var required: [PaymentItem]
            if method == "ach-debit" {
                required = [.bankRoutingNumber, .bankAccountNumber]
            } else {
                required = [.cardNumber]
                if form["SecurityCode"] != "false" { required.append(.securityCode) }
                required.append(.expirationDate)
                if form["PostalCode"] != "false" { required.append(.postalCode) }
                // RequireMatchingInputs: each listed item is typed twice; the second entry is its `-matcher`.
                let matched = Set(
                    (form["RequireMatchingInputs"] ?? "").split(separator: ",").map {
                        String($0).trimmingCharacters(in: .whitespaces)
                    })
                required = required.flatMap { item in matched.contains(item.rawValue) ? [item, item.matcher!] : [item] }
            }
            let payment = Payment(
                sid: sid, callSID: callSID, statusCallback: form["StatusCallback"]!, options: form, required: required,
                created: now)
            state.payments[sid] = payment
            state.calls[callSID]?.activePayment = sid
            return (sid, payment)
        }
        configuration.onPaymentCreated?(payment, callSID, created.statusCallback)
        enqueue(payment, commonFields(created, at: now))
        return (.created, resourceBody(payment, call: callSID, created: now, updated: now))
    }

    func update(
        form pairs: [(String, String)], call callText: String, paymentText: String
    ) throws -> (HTTPResponse.Status, String) {
        let form = Dictionary(pairs, uniquingKeysWith: { _, last in last })
        try checkCommon(form)
        guard let sid = PaymentSID(paymentText) else {
            throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
        }
        let capture = form["Capture"].flatMap(PaymentItem.init(rawValue:))
        let status = form["Status"].flatMap(PaymentSessionStatus.init(rawValue:))
        guard (capture == nil) != (status == nil) else {
            throw Failure(
                status: .badRequest, code: 64018, message: "Exactly one of Capture or Status must be provided")
        }
        let callSID = CallSID(callText)!
        let now = Date()
        let payment = try state.withLock { state -> Payment in
            guard var payment = state.payments[sid], payment.callSID == callSID else {
                throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
            }
            guard state.calls[callSID]?.status ?? "in-progress" == "in-progress" else {
                throw Failure(status: .badRequest, code: 21220, message: "Call is not in-progress")
            }
            guard !payment.finished else {
                throw Failure(
                    status: .badRequest, code: 64020, message: "The payment session has ended; start a new one")
            }
            payment.statusCallback = form["StatusCallback"]!
            if status == .complete {
                let missing = payment.required.filter { payment.typed[$0] == nil }
                if !missing.isEmpty {
                    throw Failure(
                        status: .badRequest, code: 64019,
                        message: "Required payment information is incomplete: "
                            + missing.map(\.rawValue).joined(separator: ", "))
                }
            }
            if status != nil {
                payment.typing?.cancel()
                payment.typing = nil
                payment.finished = true
            }
            state.payments[sid] = payment
            return payment
        }
        switch (capture, status) {
        case (let item?, _):
            // Twilio calls back "whenever the update request is made": the item, what is still
            // required, and no value yet.
            var fields = commonFields(payment, at: now) + [("Capture", item.rawValue)]
            if configuration.callbackShape.captureTimePartialResult == .true {
                fields.append(("PartialResult", "true"))
            }
            enqueue(payment.sid, fields + remainingRequired(payment.sid))
            startTyping(item, payment: payment)
        case (_, .complete?):
            // A callback when the Complete API is called, then one with the result.
            enqueue(payment.sid, commonFields(payment, at: now))
            finishWithResult(payment, at: now)
        default:
            // Cancel is final and immediate; Twilio calls back when the Cancel API is called
            // (with no documented result), and sends nothing after it.
            enqueue(payment.sid, commonFields(payment, at: now), closing: true)
        }
        return (.accepted, resourceBody(sid, call: callSID, created: payment.created, updated: now))
    }

    // MARK: The simulated caller

    func commonFields(_ payment: Payment, at date: Date) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("AccountSid", configuration.credentials.accountSID.rawValue), ("CallSid", payment.callSID.rawValue),
            ("Sid", payment.sid.rawValue),
            ("DateCreated", Self.iso8601(payment.created)), ("DateUpdated", Self.iso8601(date)),
            ("PaymentConnector", payment.options["PaymentConnector"] ?? "Default"),
            ("PaymentMethod", payment.options["PaymentMethod"] ?? "credit-card"),
            ("TokenType", payment.options["TokenType"] ?? "reusable"),
        ]
        if let amount = payment.options["ChargeAmount"] { fields.append(("ChargeAmount", amount)) }
        if let type = payment.options["BankAccountType"] { fields.append(("BankAccountType", type)) }
        return fields
    }

    /// The `Required` fields for what is still to collect, in the configured shape.
    private func remainingRequired(_ sid: PaymentSID) -> [(String, String)] {
        let items = state.withLock { state -> [PaymentItem] in
            guard let payment = state.payments[sid] else { return [] }
            return payment.required.filter { payment.typed[$0] == nil }
        }
        return configuration.callbackShape.required(items)
    }

    private func startTyping(_ item: PaymentItem, payment: Payment) {
        let pacing = configuration.digitPacing
        let typing = Typing()
        state.withLock { state in
            state.payments[payment.sid]?.typing?.cancel()
            state.payments[payment.sid]?.typing = typing
        }
        work.spawn { [self] in
            // However it ends, this caller is no longer typing (unless a newer entry took over).
            defer {
                state.withLock { state in
                    if state.payments[payment.sid]?.typing === typing { state.payments[payment.sid]?.typing = nil }
                }
            }
            let entry = state.withLock { state -> KeypadEntry in
                state.calls[payment.callSID]?.script.nextEntry(for: item)
                    ?? .digits(CallerScript.defaultEntry(for: item))
            }
            let base = { self.commonFields(payment, at: Date()) + [("Capture", item.rawValue)] }
            if item == .securityCode, state.withLock({ $0.payments[payment.sid]?.typed[.cardNumber] == nil }) {
                enqueue(
                    payment.sid,
                    base() + [("ErrorType", "invalid-card-number-security-code-capture-sequence")]
                        + remainingRequired(payment.sid))
                return
            }
            let done: [(String, String)] =
                configuration.callbackShape.finalPartialResult == .false ? [("PartialResult", "false")] : []
            switch entry {
            case .silence:
                try? await Task.sleep(for: pacing * 5)
                if typing.isCancelled { return }
                enqueue(payment.sid, base() + done + [("ErrorType", "input-timeout")] + remainingRequired(payment.sid))
            case .hangUpSilently:
                endPayment(payment.sid, hangUp: true)
                state.withLock { state in
                    state.payments[payment.sid]?.callbacksClosed = true
                }
            case .hangUp, .pressStar:
                let result = entry == .hangUp ? "caller-hung-up" : "caller-interrupted-with-star"
                endPayment(payment.sid, hangUp: entry == .hangUp)
                enqueue(payment.sid, base() + [("Result", result)], closing: true)
            case .digits(let digits):
                var typed = ""
                for digit in digits {
                    if typing.isCancelled { return }
                    if pacing > .zero { try? await Task.sleep(for: pacing) }
                    if typing.isCancelled { return }
                    typed.append(digit)
                    keypressHeard(on: payment.callSID)
                    enqueue(
                        payment.sid,
                        base() + [
                            ("PartialResult", "true"),
                            (PaymentRules.field(for: item), PaymentRules.masked(item, typed: typed, final: false)),
                        ])
                }
                if typing.isCancelled { return }
                let options = payment.options
                let (cardNumber, firstEntry) = state.withLock { state -> (String?, String?) in
                    let typed = state.payments[payment.sid]?.typed ?? [:]
                    let base = PaymentItem(rawValue: String(item.rawValue.dropLast("-matcher".count)))
                    return (typed[.cardNumber], item.isMatcher ? base.flatMap { typed[$0] } : nil)
                }
                let accepted = (options["ValidCardTypes"] ?? "visa mastercard amex").split(separator: " ").map(
                    String.init)
                if item.isMatcher, firstEntry != digits {
                    // The two entries differ: Twilio wants both again.
                    state.withLock { state in
                        if let base = PaymentItem(rawValue: String(item.rawValue.dropLast("-matcher".count))) {
                            state.payments[payment.sid]?.typed.removeValue(forKey: base)
                        }
                    }
                    enqueue(
                        payment.sid,
                        base() + done + [("ErrorType", "input-matching-failed")] + remainingRequired(payment.sid))
                } else if let error = PaymentRules.error(
                    for: item, value: digits, acceptedCards: accepted, cardNumber: cardNumber,
                    minPostalCodeLength: options["MinPostalCodeLength"].flatMap(Int.init), now: Date())
                {
                    enqueue(
                        payment.sid, base() + done + [("ErrorType", error.rawValue)] + remainingRequired(payment.sid))
                } else {
                    state.withLock { $0.payments[payment.sid]?.typed[item] = digits }
                    var fields =
                        base() + done + [
                            (PaymentRules.field(for: item), PaymentRules.masked(item, typed: digits, final: true))
                        ]
                    if item == .cardNumber, let type = PaymentRules.cardType(digits) {
                        fields.append(("PaymentCardType", type))
                    }
                    enqueue(payment.sid, fields + remainingRequired(payment.sid))
                }
            }
        }
    }

    private func endPayment(_ sid: PaymentSID, hangUp: Bool) {
        state.withLock { state in
            guard let payment = state.payments[sid] else { return }
            state.payments[sid]?.finished = true
            if hangUp {
                state.calls[payment.callSID]?.status = "completed"
                endRecordings(of: payment.callSID, in: &state)
            }
        }
    }

    private func finishWithResult(_ payment: Payment, at date: Date) {
        let completion = state.withLock { $0.calls[payment.callSID]?.script.completion ?? .succeed }
        var fields = commonFields(payment, at: date)
        switch completion {
        case .succeed:
            fields.append(("Result", "success"))
            if payment.options["ChargeAmount"].flatMap(Double.init).map({ $0 > 0 }) == true {
                fields.append(("PaymentConfirmationCode", "ch_sim_" + payment.sid.rawValue.suffix(12)))
            } else {
                fields.append(("PaymentToken", "tok_sim_" + payment.sid.rawValue.suffix(12)))
                fields.append(("ProfileId", "prof_sim_" + payment.callSID.rawValue.suffix(8)))
            }
        case .decline(let code, let message):
            fields += [
                ("Result", "payment-connector-error"), ("PaymentError", message), ("PayErrorCode", String(code)),
                ("ConnectorError", "Your card was declined."),
            ]
        }
        enqueue(payment.sid, fields, closing: true)
    }

    /// Hangs up the call on `callSID`: a running session ends with `caller-hung-up`, or, when
    /// `silently`, with no callback at all (as when the caller hangs up while nothing is being
    /// captured): only asking Twilio for the call tells it is over.
    public func hangUp(_ callSID: CallSID, silently: Bool = false) {
        let payment = state.withLock { state -> Payment? in
            state.calls[callSID]?.status = "completed"
            endRecordings(of: callSID, in: &state)
            guard let sid = state.calls[callSID]?.activePayment, let payment = state.payments[sid], !payment.finished
            else { return nil }
            state.payments[sid]?.finished = true
            state.payments[sid]?.typing?.cancel()
            return payment
        }
        if let payment, !silently {
            enqueue(payment.sid, commonFields(payment, at: Date()) + [("Result", "caller-hung-up")], closing: true)
        }
    }

    // MARK: Delivery

    /// Queues a callback of `sid`'s; `closing` makes it the last (later ones are dropped).
    private func enqueue(_ sid: PaymentSID, _ fields: [(String, String)], closing: Bool = false) {
        let startWorker = state.withLock { state -> Bool in
            guard let payment = state.payments[sid], !payment.callbacksClosed else { return false }
            if closing { state.payments[sid]?.callbacksClosed = true }
            state.pendingCallbacks += 1
            return state.deliveries.enqueue(fields, for: sid)
        }
        if startWorker { work.spawn { [self] in await deliverCallbacks() } }
    }

    /// Sends waiting callbacks, each as a signed form POST to its payment's status callback URL,
    /// until none waits (``CallbackDeliveries``).
    private func deliverCallbacks() async {
        let transport = configuration.callbackTransport
        while !Task.isCancelled {
            guard let (sid, fields) = state.withLock({ $0.deliveries.next() }) else { return }
            let url = state.withLock { $0.payments[sid]?.statusCallback } ?? ""
            var status: Int?
            if let target = URL(string: url) {
                let request = TwilioPayments.HTTPRequest(
                    method: "POST", url: target,
                    headers: [
                        ("Content-Type", "application/x-www-form-urlencoded"),
                        ("X-Twilio-Signature", signer.sign(url: url, parameters: fields)),
                        ("User-Agent", "TwilioProxy/1.1 (agent-payments simulator)"),
                    ], body: Data(FormEncoding.encode(fields).utf8), timeout: .seconds(10))
                do {
                    status = try await transport.send(request).status
                } catch {
                    // Told, not retried (whether Twilio retries a status callback is not
                    // documented): a flow that waits for it may wait for good. Never the URL,
                    // whose path holds the session's callback secret.
                    logger.warning(
                        "simulator: a status callback was not delivered",
                        metadata: ["payment.sid": "\(sid)", "reason": "\(error)"])
                }
                if let status, !(200..<300).contains(status) {
                    logger.warning(
                        "simulator: a status callback was refused",
                        metadata: ["payment.sid": "\(sid)", "http.status": "\(status)"])
                }
            }
            let limit = configuration.callbackHistoryLimit
            state.withLock { state in
                if limit > 0 {
                    state.sent.append(SentCallback(url: url, fields: fields, status: status))
                    if state.sent.count > limit { state.sent.removeFirst(state.sent.count - limit) }
                }
                state.pendingCallbacks -= 1
                state.deliveries.sent(sid)
            }
        }
        state.withLock { $0.deliveries.workerStopped() }
    }
}
