public import Foundation
import Synchronization
import Tracing
public import TwilioPayments

/// Why the coordinator could not do what was asked: cases a host can switch on, each with a
/// sentence a person can act on.
public enum FlowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The session's rules refuse the request (``FlowRejection`` says which rule); nothing was
    /// sent to Twilio.
    case rejected(FlowRejection)
    /// The payment options are invalid (checked before Twilio is asked); one sentence each.
    case invalidOptions([String])
    /// An argument from the host is missing or malformed.
    case invalidArgument(String)
    /// Other writers kept changing the session while this request tried to apply; nothing was
    /// sent. Safe to retry.
    case conflict
    /// The session disappeared from the store while the request ran (expired, or removed).
    case sessionGone
    /// A payment session is already running (or starting) on this call.
    case sessionInProgress(callSID: CallSID, paymentSID: PaymentSID?)
    /// No session with this payment SID is known.
    case unknownSession(PaymentSID)
    /// The payment SID belongs to another call.
    case wrongCall(paymentSID: PaymentSID, callSID: CallSID)
    /// Twilio refused or could not be reached.
    case twilio(TwilioError)
    /// No StatusCallback URL could be had (for example, the tunnel is not up).
    case callbackUnavailable(String)
    /// The call is over (Twilio reports it no longer in progress); the session has ended as
    /// `call-ended` and no payment can continue on this call.
    case callEnded(callSID: CallSID, status: String?)
    /// The spending policy refuses the charge (``PolicyRefusal`` names the limit); nothing was sent.
    case policy(PolicyRefusal)
    /// Another principal's payment is under way on this call (its SID is not shown to this one).
    case callBusy(callSID: CallSID)
    /// The session store could not be reached (a database restarting, say). Nothing was lost:
    /// every stored session is as it was, and an operation already sent to Twilio is sent again
    /// with the same idempotency key. Safe to retry in a moment.
    case storeUnavailable(String)
    /// The call's recordings could not be paused and the host requires it
    /// (``RecordingPausing/required``): nothing was created, what was paused runs again.
    case recordingsNotPaused(String)

    /// Whether the same request may succeed if simply made again shortly, with nothing changed
    /// (the store or the callback URL was briefly away, other writers kept winning, Twilio was
    /// throttling).
    public var isRetryable: Bool {
        switch self {
        case .conflict, .storeUnavailable, .callbackUnavailable: return true
        case .twilio(let error):
            if case .api(let answer) = error { return answer.isThrottling }
            return false
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .rejected(let rejection): return "Refused: \(rejection)."
        case .invalidOptions(let problems): return "Invalid payment options: " + problems.joined(separator: "; ") + "."
        case .invalidArgument(let problem): return "Invalid argument: \(problem)."
        case .conflict: return "The payment session kept changing under this request; try again."
        case .sessionGone: return "The payment session is no longer stored."
        case .sessionInProgress(let call, let payment?):
            return "A payment session (\(payment)) is already running on call \(call); complete or cancel it first."
        case .sessionInProgress(let call, nil):
            return "A payment session is already starting on call \(call); wait for it, then complete or cancel it."
        case .unknownSession(let sid): return "No payment session \(sid) is known to this server."
        case .wrongCall(let payment, let call): return "Payment session \(payment) does not belong to call \(call)."
        case .twilio(let error): return error.description
        case .callbackUnavailable(let reason): return "No status callback URL is available: \(reason)."
        case .callEnded(let call, let status):
            return
                "The call \(call) has ended\(status.map { " (Twilio reports it \($0))" } ?? ""); the payment cannot continue on it."
        case .policy(let refusal): return "Refused by this server's spending policy: \(refusal)."
        case .callBusy(let call):
            return
                "Another client's payment is under way on call \(call); this client cannot start one there until it ends."
        case .storeUnavailable(let reason):
            return "The payment session store is unavailable (\(reason)); nothing was lost, try again in a moment."
        case .recordingsNotPaused(let reason):
            return
                "The call's recording could not be paused, so no card can be taken on it now (\(reason)); nothing was charged."
        }
    }
}

/// A request to the payment flow, as a value: what a host hands ``PaymentCoordinator/perform(_:)``
/// (and may run in a task of its own, so that its caller giving up never cuts a Twilio request
/// short).
public enum PaymentCommand: Sendable, Equatable {
    /// Start a session on the call with these options (or resume its unfinished one, if the
    /// options and reference are the same). `reference` is the host's own name for what the
    /// payment belongs to, echoed in every notice (``PaymentSession/reference``).
    case start(callSID: CallSID, options: PaymentSessionOptions, reference: String? = nil)
    /// Capture an item; `restart` starts over an entry under way or captured.
    case capture(PaymentItem, paymentSID: PaymentSID, callSID: CallSID?, restart: Bool)
    /// Complete (charge or tokenize).
    case complete(paymentSID: PaymentSID, callSID: CallSID?)
    /// Cancel.
    case cancel(paymentSID: PaymentSID, callSID: CallSID?)
}

/// What a command left behind: the session, and whether the command was a repeat of one
/// already under way or done (a resumed start, a capture of the item being typed, a second
/// completion or cancellation), which sent nothing to Twilio.
public struct CommandOutcome: Sendable, Equatable {
    public var session: PaymentSession
    public var repeated: Bool

    public init(session: PaymentSession, repeated: Bool) {
        self.session = session
        self.repeated = repeated
    }
}

/// Runs payment sessions: it applies every event through ``PaymentReducer``, performs the
/// REST calls the reducer asks for, keeps the sessions in a ``PaymentStore`` and announces
/// every change on a ``PaymentChangeFeed``.
///
/// It holds no payment state of its own, so any number of coordinators (one per replica) can
/// share one store and feed: a session, its callback secret's hash and the idempotency key of
/// each operation in flight all live in the stored session (the secret and its URL are derived
/// again from the callback key whenever they are needed, never stored). A session is
/// stored before Twilio is asked to create it, so a callback that beats Twilio's answer finds
/// it. One session per call at a time (the store refuses a second unfinished one); any number
/// of calls at once.
public actor PaymentCoordinator {
    private let api: any TwilioPaymentsAPI
    private let store: any PaymentStore
    private let ledger: any SpendingLedger
    /// Where the notices of every stored change go (webhooks), if anywhere.
    private let notices: (any PaymentNoticeSink)?
    /// What may be charged, whatever the agent asks.
    public nonisolated let policy: SpendingPolicy
    private let feed: any PaymentChangeFeed
    private let callbackURLs: any CallbackURLProvider
    /// Where the key callback secrets are derived from comes from; replicas sharing a store must
    /// share it.
    private let callbackKey: any CallbackKeySource
    let now: @Sendable () -> Date
    /// Where every command, callback and ended call is recorded (PCI DSS 10), if anywhere.
    let audit: (any AuditTrail)?
    /// This replica's name in audit records.
    let replica: String
    /// How long a start may wait for Twilio's answer before it counts as stranded (its replica
    /// died between storing it and Twilio's answer): then anyone may send its creation again.
    public nonisolated let strandedAfter: Duration
    /// How the calls' recordings are paused during payments, if they are.
    let recordingPausing: RecordingPausing?
    /// The trace each call's payment was started in by this process (spans:
    /// `swift-distributed-tracing`, the host's tracer): callbacks link to it, notifications join it.
    public nonisolated let traces = PaymentTraces()
    /// When each session's call was last checked by ``checkSilentCalls(silentFor:)`` (a local
    /// economy: another replica may check too).
    private var lastCallCheck: [PaymentSID: Date] = [:]
    /// The operations this coordinator is sending to Twilio now, by session id: a second request
    /// for one of them is a repeat (it waits for nothing and sends nothing), while one whose
    /// sender is gone (another replica died mid-request) is sent again with the stored key.
    private var sending: Set<SendingOperation> = []
    private struct SendingOperation: Hashable {
        var session: String
        var operation: PaymentOperation
    }
    /// Long polls waiting now, by payment SID (for tests and figures).
    private var waiting: [PaymentSID: Int] = [:]
    /// The newest version of every session this coordinator wrote, read or heard of on the feed,
    /// for status reads that need no actor hop (``publishedSession(_:)``).
    private nonisolated let published = PublishedSessions()
    /// Callbacks on one session apply one at a time, in arrival order (``SessionTurns``).
    nonisolated let callbackTurns = SessionTurns()

    public init(
        api: any TwilioPaymentsAPI, store: any PaymentStore = InMemoryPaymentStore(),
        feed: any PaymentChangeFeed = InMemoryChangeFeed(), callbackURLs: any CallbackURLProvider,
        callbackKey: any CallbackKeySource = Secret(PathSecret.make() + PathSecret.make()),
        policy: SpendingPolicy = .unlimited,
        ledger: any SpendingLedger = InMemorySpendingLedger(), notices: (any PaymentNoticeSink)? = nil,
        audit: (any AuditTrail)? = nil, replica: String = "local", strandedAfter: Duration = .seconds(30),
        recordingPausing: RecordingPausing? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.strandedAfter = strandedAfter
        self.recordingPausing = recordingPausing
        self.audit = audit
        self.replica = replica
        self.notices = notices
        self.callbackKey = callbackKey
        self.policy = policy
        self.ledger = ledger
        self.api = api
        self.store = store
        self.feed = feed
        self.callbackURLs = callbackURLs
        self.now = now
    }

    // MARK: Commands

    /// Runs `command` and says whether it was a repeat.
    ///
    /// Repeats are harmless, so a retried or repeated call (a client's retry after its timeout,
    /// a model calling twice) never disturbs the caller: starting again on a call whose unfinished
    /// session has the same options resumes that session; capturing the item the caller is typing
    /// (or one already captured), completing a session that is completing or completed, and
    /// cancelling one that is cancelling or cancelled return the session as it is. None of them
    /// asks Twilio anything. Starting with different options is refused
    /// (``FlowError/sessionInProgress(callSID:paymentSID:)``).
    ///
    /// With an `actor`, the command acts for that principal: a session it may not access
    /// (``PaymentActor/mayAccess(_:)``) is unknown to it (``FlowError/unknownSession(_:)``, as
    /// for a SID nobody knows), a start on a call where another principal's payment runs is
    /// ``FlowError/callBusy(callSID:)``, and what it starts records it as owner. Without one
    /// (a host that has no principals) every session is reachable and new ones have no owner.
    ///
    /// Every command, carried out, repeated or refused, is appended to the audit trail.
    public func perform(
        _ command: PaymentCommand, as actor: PaymentActor? = nil
    ) async throws(FlowError) -> CommandOutcome {
        // Before Twilio hears of it: its first callbacks may come before this command returns.
        if case .start(let callSID, _, _) = command, let context = ServiceContext.current {
            traces.remember(context, forCall: callSID.rawValue)
        }
        let outcome: CommandOutcome
        do {
            outcome = try await performUnrecorded(command, as: actor)
        } catch {
            await record(command, as: actor, outcome: "refused: \(error.auditReason)", session: nil)
            throw error
        }
        await record(command, as: actor, outcome: outcome.repeated ? "repeated" : "ok", session: outcome.session)
        return outcome
    }

    private func performUnrecorded(
        _ command: PaymentCommand, as actor: PaymentActor?
    ) async throws(FlowError) -> CommandOutcome {
        switch command {
        case .start(let callSID, let options, let reference):
            return try await startOrResume(callSID: callSID, options: options, reference: reference, actor: actor)
        case .capture(let item, let paymentSID, let callSID, let restart):
            return try await run(
                .captureRequested(
                    item, at: now(), idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey(), restart: restart),
                paymentSID: paymentSID, callSID: callSID, actor: actor)
        case .complete(let paymentSID, let callSID):
            return try await run(
                .completeRequested(at: now(), idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey()),
                paymentSID: paymentSID, callSID: callSID, actor: actor)
        case .cancel(let paymentSID, let callSID):
            return try await run(
                .cancelRequested(at: now(), idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey()),
                paymentSID: paymentSID, callSID: callSID, actor: actor)
        }
    }

    /// Starts a payment session on `callSID`; on a call whose unfinished session has the same
    /// options, returns that session instead (resumed, nothing sent).
    public func start(callSID: CallSID, options: PaymentSessionOptions) async throws(FlowError) -> PaymentSession {
        try await perform(.start(callSID: callSID, options: options)).session
    }

    private func startOrResume(
        callSID: CallSID, options asked: PaymentSessionOptions, reference: String?,
        actor: PaymentActor?
    ) async throws(FlowError) -> CommandOutcome {
        let problems = asked.validate() + Self.cardDataProblems(asked) + Self.referenceProblems(reference)
        if !problems.isEmpty { throw .invalidOptions(problems) }
        let (options, fromAmountDue) = try await authorize(asked, callSID: callSID, actor: actor)
        if var running = try await unfinished(onCall: callSID) {
            if let actor, !actor.mayAccess(running) { throw .callBusy(callSID: callSID) }
            guard running.configuration.options == options, running.reference == reference else {
                // A start stranded by a replica that died is settled first, so that this one is
                // answered with its outcome: running (refused, naming it), or over (the call is free).
                if isStranded(running) { running = try await recover(running) }
                if running.phase.isFinished {
                    return try await startOrResume(
                        callSID: callSID, options: asked, reference: reference, actor: actor)
                }
                throw .sessionInProgress(callSID: callSID, paymentSID: running.paymentSID)
            }
            return try await resume(running)
        }
        // Counted before anything is stored or sent, so that replicas starting charges for one
        // principal at once cannot together pass the daily limit; given back if this start
        // stores nothing, or when the session ends without charging.
        var charge = fromAmountDue ? ChargeAuthorization(fromAmountDue: true) : nil
        var counted: (principal: String, day: String, currency: String, amount: Decimal)?
        if options.isCharge, let limit = policy.dailyLimit,
            let amount = options.chargeAmount.flatMap(SpendingPolicy.decimal)
        {
            let principal = actor?.owner.principal ?? "host", day = ChargeAuthorization.day(of: now()),
                currency = SpendingPolicy.currency(of: options)
            let (spent, reserved) = try await ledgered { () async throws(PaymentStoreError) in
                try await ledger.reserve(
                    principal: principal, day: day, currency: currency, amount: amount, limit: limit)
            }
            guard reserved else {
                throw .policy(
                    .dailyLimitReached(
                        amount: SpendingPolicy.text(amount), spentToday: SpendingPolicy.text(spent),
                        limit: SpendingPolicy.text(limit), currency: currency))
            }
            counted = (principal, day, currency, amount)
            charge = ChargeAuthorization(countedOn: day, fromAmountDue: fromAmountDue)
        }
        // Given back (awaited, not left to a task) when this start stores nothing.
        func giveBack() async {
            guard let counted else { return }
            try? await ledger.release(
                principal: counted.principal, day: counted.day, currency: counted.currency, amount: counted.amount)
        }

        let id = UUID().uuidString
        let url: String, secret: String
        do {
            (url, secret) = try await callbackURL(for: id)
        } catch {
            await giveBack()
            throw error
        }
        let key = TwilioPaymentsClient.makeIdempotencyKey()
        var session = PaymentSession(
            callSID: callSID, configuration: PaymentConfiguration(options: options), at: now(), id: id,
            callbackSecretHash: CallbackSecretHash.of(secret))
        session.owner = actor?.owner
        session.charge = charge
        session.reference = reference
        session.inFlight[.create] = key
        // Claimed before it can be found, so that a twin of this start resumes it rather than re-sending.
        let claim = SendingOperation(session: id, operation: .create)
        sending.insert(claim)
        defer { sending.remove(claim) }
        // Stored first: one per call (the store refuses a second), and findable by early callbacks.
        let inserted: Bool
        do {
            inserted = try await stored(as: "write") { () async throws(PaymentStoreError) in
                try await store.compareAndSet(session, expectedVersion: nil)
            }
        } catch {
            await giveBack()
            throw error
        }
        guard inserted else {
            await giveBack()
            // Another start on this call won the race: the same request (a retry) resumes it.
            let running = try await unfinished(onCall: callSID)
            if let actor, let running, !actor.mayAccess(running) { throw .callBusy(callSID: callSID) }
            guard let running, running.configuration.options == options, running.reference == reference else {
                throw .sessionInProgress(callSID: callSID, paymentSID: running?.paymentSID)
            }
            return try await resume(running)
        }
        FlowMetrics.started(session)
        published.offer(session)
        await feed.publish(session)
        if let recordingPausing { session = try await pauseRecordings(of: session, recordingPausing) }
        return CommandOutcome(session: try await create(session, key: key, url: url), repeated: false)
    }

    /// The free-text options that look like they hold a card number (a Luhn-valid run of 12–19
    /// digits): they would be sent to Twilio and stored, so they are refused, never quoted.
    static func cardDataProblems(_ options: PaymentSessionOptions) -> [String] {
        var problems: [String] = []
        if let description = options.description, Masking.containsCardNumber(description) {
            problems.append("description looks like it holds a card number; card data never goes in a description")
        }
        for (name, value) in (options.parameters ?? [:]).sorted(by: { $0.key < $1.key }) {
            let text: String
            switch value {
            case .string(let string): text = string
            case .number(let number): text = number
            case .bool: continue
            }
            if Masking.containsCardNumber(name) || Masking.containsCardNumber(text) {
                problems.append(
                    "a connector parameter looks like it holds a card number; card data never goes in a parameter")
            }
        }
        if let connector = options.paymentConnector, Masking.containsCardNumber(connector) {
            problems.append("paymentConnector looks like it holds a card number")
        }
        return problems
    }

    /// What is wrong with a start's `reference`: longer than 256 characters, control
    /// characters, or what looks like a card number (it is echoed in every notice).
    static func referenceProblems(_ reference: String?) -> [String] {
        guard let reference else { return [] }
        var problems: [String] = []
        if reference.isEmpty || reference.count > 256 { problems.append("reference must be 1 to 256 characters") }
        if reference.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            problems.append("reference must not contain control characters")
        }
        if Masking.containsCardNumber(reference) {
            problems.append("reference looks like it holds a card number; card data never goes in a reference")
        }
        return problems
    }

    /// The options a start runs with, after the amount due and the spending policy: the amount
    /// the backend registered for the call fills in a missing one and refuses another; then the
    /// currency and the per-payment maximum are checked. (The daily limit is counted when the
    /// session is stored.) Returns whether the amount came from the amount due.
    private func authorize(
        _ asked: PaymentSessionOptions, callSID: CallSID, actor: PaymentActor?
    ) async throws(FlowError) -> (PaymentSessionOptions, Bool) {
        var options = asked
        var fromAmountDue = false
        // Only an amount due this actor may use fixes its charge: another tenant's is not its business.
        if let due = try await ledgered({ () async throws(PaymentStoreError) in
            try await ledger.amountDue(onCall: callSID, now: now())
        }),
            actor?.mayUse(due) ?? true
        {
            if let text = asked.chargeAmount, let value = SpendingPolicy.decimal(text), value > 0 {
                guard value == SpendingPolicy.decimal(due.amount), SpendingPolicy.currency(of: asked) == due.currency
                else {
                    throw .policy(
                        .amountDiffers(
                            asked: "\(text) \(SpendingPolicy.currency(of: asked))", due: due.amount,
                            currency: due.currency))
                }
                fromAmountDue = true
            } else if asked.chargeAmount == nil {
                options.chargeAmount = due.amount
                options.currency = due.currency
                fromAmountDue = true
            }
        }
        guard options.isCharge, let amount = options.chargeAmount.flatMap(SpendingPolicy.decimal) else {
            return (options, fromAmountDue)
        }
        if let actor, !actor.mayCharge { throw .policy(.chargeNotPermitted) }
        if policy.requireAmountDue, !fromAmountDue { throw .policy(.amountDueRequired) }
        let currency = SpendingPolicy.currency(of: options)
        if let allowed = policy.currencies, !allowed.contains(currency) {
            throw .policy(.currencyNotAllowed(currency: currency, allowed: allowed.sorted()))
        }
        if let maximum = policy.maximumCharge, amount > maximum {
            throw .policy(
                .chargeTooLarge(
                    amount: SpendingPolicy.text(amount), maximum: SpendingPolicy.text(maximum), currency: currency))
        }
        return (options, fromAmountDue)
    }

    // MARK: Amounts due

    /// Registers what the caller owes on `callSID`, as the voice app's backend knows it: a start
    /// without an amount then charges it, and a start with another amount is refused
    /// (``PolicyRefusal/amountDiffers(asked:due:currency:)``). It applies until `due.expiresAt`,
    /// or until a payment on the call charges it.
    ///
    /// With an `actor`, it is registered as that actor's (``PaymentActor/mayUse(_:)``), and it
    /// is refused as ``FlowError/callBusy(callSID:)`` when the call already has another
    /// principal's amount due or payment under way: nobody fixes what another tenant charges.
    public func registerAmountDue(
        _ due: AmountDue, onCall callSID: CallSID, as actor: PaymentActor? = nil
    ) async throws(FlowError) {
        var due = due
        if let actor {
            if due.registeredBy == nil { due.registeredBy = actor.owner }
            if let existing = try await ledgered({ () async throws(PaymentStoreError) in
                try await ledger.amountDue(onCall: callSID, now: now())
            }),
                !actor.mayUse(existing)
            {
                throw .callBusy(callSID: callSID)
            }
            if let running = try await unfinished(onCall: callSID), !actor.mayAccess(running) {
                throw .callBusy(callSID: callSID)
            }
        }
        let problems = due.validate()
        if !problems.isEmpty { throw .invalidArgument(problems.joined(separator: "; ")) }
        if let maximum = policy.maximumCharge, let value = SpendingPolicy.decimal(due.amount), value > maximum {
            throw .policy(
                .chargeTooLarge(amount: due.amount, maximum: SpendingPolicy.text(maximum), currency: due.currency))
        }
        if let allowed = policy.currencies, !allowed.contains(due.currency) {
            throw .policy(.currencyNotAllowed(currency: due.currency, allowed: allowed.sorted()))
        }
        try await ledgered { () async throws(PaymentStoreError) in try await ledger.setAmountDue(due, onCall: callSID) }
    }

    /// The amount due registered on `callSID`, if any still applies (and, with an `actor`, only
    /// one it may use: another tenant's reads as none).
    public func amountDue(onCall callSID: CallSID, as actor: PaymentActor? = nil) async throws(FlowError) -> AmountDue?
    {
        let due = try await ledgered { () async throws(PaymentStoreError) in
            try await ledger.amountDue(onCall: callSID, now: now())
        }
        guard let due, actor?.mayUse(due) ?? true else { return nil }
        return due
    }

    /// Withdraws the amount due on `callSID`; returns whether there was one (with an `actor`,
    /// one it may use: another tenant's is left alone, as if there were none).
    @discardableResult
    public func clearAmountDue(onCall callSID: CallSID, as actor: PaymentActor? = nil) async throws(FlowError) -> Bool {
        guard try await amountDue(onCall: callSID, as: actor) != nil else { return false }
        try await ledgered { () async throws(PaymentStoreError) in try await ledger.clearAmountDue(onCall: callSID) }
        return true
    }

    /// Runs one ledger request; a ledger that cannot answer is a store outage.
    private func ledgered<T>(_ request: () async throws(PaymentStoreError) -> T) async throws(FlowError) -> T {
        do {
            return try await request()
        } catch {
            throw .storeUnavailable(error.reason)
        }
    }

    /// What a session that just finished leaves in the ledger: a charge that went through
    /// consumes the call's amount due; one that did not gives back what it counted.
    private nonisolated(nonsending) func settle(_ session: PaymentSession) async {
        guard let charge = session.charge else { return }
        if case .completed = session.phase {
            if charge.fromAmountDue { try? await ledger.clearAmountDue(onCall: session.callSID) }
            return
        }
        guard let day = charge.countedOn,
            let amount = session.configuration.options.chargeAmount.flatMap(SpendingPolicy.decimal)
        else { return }
        try? await ledger.release(
            principal: session.owner?.principal ?? "host", day: day,
            currency: SpendingPolicy.currency(of: session.configuration.options), amount: amount)
    }

    /// A start repeated on a call whose unfinished session has the same options: that session.
    /// If Twilio never answered its creation and nobody here is sending it (the replica that
    /// started it died), the creation is sent again with its stored key, so Twilio creates it once.
    private func resume(_ running: PaymentSession) async throws(FlowError) -> CommandOutcome {
        let claim = SendingOperation(session: running.id, operation: .create)
        guard case .starting = running.phase, let key = running.inFlight[.create], !sending.contains(claim) else {
            return CommandOutcome(session: running, repeated: true)
        }
        sending.insert(claim)
        defer { sending.remove(claim) }
        let url = try await callbackURL(for: running.id).url
        return CommandOutcome(session: try await create(running, key: key, url: url), repeated: false)
    }

    // MARK: Recordings

    /// Pauses every recording of the call that runs (before the payment is created: nothing the
    /// caller types is recorded), and stores what was done. A failure is stored and told to the
    /// host; when the host requires the pause, the start is refused: what was paused runs again
    /// and the session fails without a payment being created.
    private func pauseRecordings(
        of session: PaymentSession, _ pausing: RecordingPausing
    ) async throws(FlowError) -> PaymentSession {
        var paused: [RecordingSID] = []
        var failure: String?
        do {
            for recording in try await pausing.api.recordings(ofCall: session.callSID) where recording.isRecording {
                _ = try await pausing.api.updateRecording(recording.sid, ofCall: session.callSID, .pause)
                paused.append(recording.sid)
            }
        } catch {
            failure = "the call's recordings could not be paused: \(error.description)"
        }
        let pause = RecordingsPause(state: failure == nil ? .paused : .pauseFailed, recordings: paused, reason: failure)
        var after = try await mutate(id: session.id) {
            PaymentReducer.reduce($0, .recordingsChanged(pause, at: self.now()))
        }.session
        FlowMetrics.recordings(failure == nil ? "paused" : "pause_failed")
        guard let failure else { return after }
        pausing.onFailure(failure, after)
        guard pausing.required else { return after }
        after = await resumeRecordings(of: after, pausing)
        _ = try? await mutate(id: session.id) {
            PaymentReducer.reduce($0, .requestFailed(.create, reason: failure, at: self.now()))
        }
        throw .recordingsNotPaused(failure)
    }

    /// Resumes, in a task of its own (a callback's answer does not wait for Twilio), the
    /// recordings that `finished` paused, unless its call ended (they ended with it).
    private nonisolated func resumeRecordingsLater(of finished: PaymentSession) {
        guard let recordingPausing, let pause = finished.recordings, !pause.recordings.isEmpty,
            pause.state == .paused || pause.state == .pauseFailed
        else { return }
        if finished.phase.kind == .callEnded {
            Task {
                _ = try? await self.mutate(id: finished.id) {
                    PaymentReducer.reduce(
                        $0,
                        .recordingsChanged(
                            RecordingsPause(state: .callEnded, recordings: pause.recordings), at: self.now()))
                }
            }
            return
        }
        Task { _ = await self.resumeRecordings(of: finished, recordingPausing) }
    }

    /// Resumes the recordings `session` paused and stores the outcome; the session after.
    @discardableResult
    private func resumeRecordings(of session: PaymentSession, _ pausing: RecordingPausing) async -> PaymentSession {
        guard let pause = session.recordings, !pause.recordings.isEmpty else { return session }
        var failure: String?
        for recording in pause.recordings {
            do {
                _ = try await pausing.api.updateRecording(recording, ofCall: session.callSID, .resume)
            } catch {
                failure = "the call's recordings could not be resumed: \(error.description)"
            }
        }
        let resumed = RecordingsPause(
            state: failure == nil ? .resumed : .resumeFailed, recordings: pause.recordings, reason: failure)
        FlowMetrics.recordings(failure == nil ? "resumed" : "resume_failed")
        let after =
            (try? await mutate(id: session.id) {
                PaymentReducer.reduce($0, .recordingsChanged(resumed, at: self.now()))
            })?.session ?? session
        if let failure { pausing.onFailure(failure, after) }
        return after
    }

    /// Whether `session` is a stranded start: still `starting` with its creation's key stored,
    /// unchanged for ``strandedAfter`` (longer than a Twilio request's whole retry budget), and
    /// not being sent by this coordinator. Its replica most likely died before Twilio answered.
    func isStranded(_ session: PaymentSession) -> Bool {
        guard case .starting = session.phase, session.inFlight[.create] != nil,
            !sending.contains(SendingOperation(session: session.id, operation: .create))
        else { return false }
        return strandedAt(session) <= now()
    }

    /// When `session`, if it is still `starting` then, counts as stranded: ``strandedAfter``
    /// after its last change.
    public nonisolated func strandedAt(_ session: PaymentSession) -> Date {
        session.updatedAt.addingTimeInterval(Self.seconds(strandedAfter))
    }

    /// Settles a stranded start: its creation is sent again with its stored key (so Twilio
    /// creates the payment once, whether or not the first request reached it), and Twilio's
    /// answer makes it active or its error fails it with the reason; a call that is over ends it
    /// instead. Recorded in the audit trail as `payment.start.recovered`. Returns the session after.
    private func recover(_ session: PaymentSession) async throws(FlowError) -> PaymentSession {
        let claim = SendingOperation(session: session.id, operation: .create)
        guard let key = session.inFlight[.create], !sending.contains(claim) else { return session }
        sending.insert(claim)
        defer { sending.remove(claim) }
        var after = session
        var outcome = "ok"
        do {
            if case .ended(let status) = await callState(session.callSID) {
                after = try await mutate(id: session.id) {
                    PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status))
                }.session
                outcome = "call ended"
            } else {
                after = try await create(session, key: key, url: try await callbackURL(for: session.id).url)
            }
        } catch {
            outcome = "refused: \(error.auditReason)"
            after =
                (try? await stored { () async throws(PaymentStoreError) in try await store.session(id: session.id) })
                ?? session
            FlowMetrics.strandedStart(outcome: after.phase.isFinished ? "failed" : "unresolved")
            await recordRecovery(of: after, outcome: outcome)
            if !after.phase.isFinished { throw error }
            return after
        }
        FlowMetrics.strandedStart(outcome: outcome == "call ended" ? "call-ended" : "recovered")
        await recordRecovery(of: after, outcome: outcome)
        return after
    }

    private func recordRecovery(of session: PaymentSession, outcome: String) async {
        await record(
            AuditEntry(
                at: now(), replica: replica, actor: "system", action: AuditAction.startRecovered.rawValue,
                outcome: outcome, callSID: session.callSID.rawValue, paymentSID: session.paymentSID?.rawValue,
                origin: nil, detail: session.configuration.options.auditDetail))
    }

    /// Settles every stranded start (``isStranded(_:)``): what the maintenance of every replica
    /// runs, so that a start whose replica died does not hold its call. Returns how many were
    /// settled (made active, failed or ended).
    @discardableResult
    public func recoverStrandedStarts() async throws(FlowError) -> Int {
        var settled = 0
        // A millisecond's margin over the exact test that follows (isStranded), for stores whose
        // timestamps are rounded.
        let cutoff = now().addingTimeInterval(-Self.seconds(strandedAfter) + 0.001)
        for session in try await stored({ () async throws(PaymentStoreError) in
            try await store.startingSessions(updatedBefore: cutoff)
        }) where isStranded(session) {
            if let after = try? await recover(session), after.version != session.version { settled += 1 }
        }
        return settled
    }

    /// `duration` in seconds, for dates.
    static func seconds(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Asks Twilio to create `session` with `key`, and stores its answer.
    private func create(_ session: PaymentSession, key: String, url: String) async throws(FlowError) -> PaymentSession {
        let resource: PaymentResource
        do {
            resource = try await api.createPayment(
                callSID: session.callSID, options: session.configuration.options, idempotencyKey: key,
                statusCallback: url)
        } catch {
            _ = try? await mutate(id: session.id) {
                PaymentReducer.reduce($0, .requestFailed(.create, reason: error.description, at: self.now()))
            }
            throw .twilio(error)
        }
        return try await mutate(id: session.id) {
            PaymentReducer.reduce($0, .sessionCreated(resource.sid, at: self.now()))
        }.session
    }

    /// The unfinished session on `callSID`, if any.
    private func unfinished(onCall callSID: CallSID) async throws(FlowError) -> PaymentSession? {
        try await stored({ () async throws(PaymentStoreError) in try await store.sessions(onCall: callSID) }).first {
            !$0.phase.isFinished
        }
    }

    /// Asks the caller's keypad for `item`. Asking again for the item the caller is typing, or
    /// for one already captured, returns the session as it is unless `restart` is set.
    public func capture(
        _ item: PaymentItem, paymentSID: PaymentSID, callSID: CallSID? = nil, restart: Bool = false
    ) async throws(FlowError) -> PaymentSession {
        try await perform(.capture(item, paymentSID: paymentSID, callSID: callSID, restart: restart)).session
    }

    /// Completes the session: charges or tokenizes. Refused, naming them, while items are missing.
    /// Asked again while completing or after it went through, returns the session as it is.
    public func complete(paymentSID: PaymentSID, callSID: CallSID? = nil) async throws(FlowError) -> PaymentSession {
        try await perform(.complete(paymentSID: paymentSID, callSID: callSID)).session
    }

    /// Cancels the session. Final: a new attempt needs a new session. Asked again while
    /// cancelling or once cancelled, returns the session as it is.
    public func cancel(paymentSID: PaymentSID, callSID: CallSID? = nil) async throws(FlowError) -> PaymentSession {
        try await perform(.cancel(paymentSID: paymentSID, callSID: callSID)).session
    }

    /// Applies a request event, performs the REST call it asks for, and applies the outcome.
    /// First it asks Twilio whether the call is still up (no callback tells of a silent
    /// hang-up): a call that has ended ends the session as `call-ended` instead.
    ///
    /// Store traffic: one read, one compare-and-set for the request (with the operation's
    /// idempotency key, before Twilio is called, so a retry anywhere reuses it), one for
    /// Twilio's answer; a conflicting writer costs one more read and write.
    private func run(
        _ request: PaymentEvent, paymentSID: PaymentSID, callSID: CallSID?, actor: PaymentActor?
    ) async throws(FlowError) -> CommandOutcome {
        guard
            let current = try await stored({ () async throws(PaymentStoreError) in try await store.session(paymentSID) }
            )
        else {
            throw .unknownSession(paymentSID)
        }
        // Another principal's session is unknown to this one, exactly as a SID nobody knows.
        if let actor, !actor.mayAccess(current) { throw .unknownSession(paymentSID) }
        if let callSID, current.callSID != callSID { throw .wrongCall(paymentSID: paymentSID, callSID: callSID) }
        // Decided from the stored session alone, before Twilio (its Calls API included) is asked
        // anything: a repeat, or what this request would send. A request this
        // coordinator is already sending is a repeat too; otherwise it is claimed here, at once,
        // so that a twin arriving meanwhile finds the claim and sends nothing.
        let preview = PaymentReducer.reduce(current, request)
        if preview.repeated { return CommandOutcome(session: current, repeated: true) }
        var claimed: Set<SendingOperation> = []
        defer { for claim in claimed { sending.remove(claim) } }
        func claim(_ effects: [PaymentEffect]) -> Bool {
            for case .send(let operation) in effects {
                let marker = SendingOperation(session: current.id, operation: operation)
                if claimed.contains(marker) { continue }
                if sending.contains(marker) { return false }
                sending.insert(marker)
                claimed.insert(marker)
            }
            return true
        }
        if !claim(preview.effects) { return CommandOutcome(session: current, repeated: true) }
        if !current.phase.isFinished, case .ended(let status) = await callState(current.callSID) {
            let ended = try await mutate(id: current.id, from: current) {
                PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status))
            }
            if case .cancelRequested = request { return CommandOutcome(session: ended.session, repeated: false) }
            throw .callEnded(callSID: current.callSID, status: status)
        }
        // Refused after the call check, so that a caller who hung up silently is noticed first.
        if let rejection = preview.rejection { throw .rejected(rejection) }
        let transition = try await mutate(id: current.id, from: current) { PaymentReducer.reduce($0, request) }
        if let rejection = transition.rejection { throw .rejected(rejection) }
        // Another writer may have changed what is to be sent: a twin sending it makes this a repeat.
        if !claim(transition.effects) { return CommandOutcome(session: transition.session, repeated: true) }
        var latest = transition.session
        for case .send(let operation) in transition.effects {
            guard let update = operation.update else { continue } // create is sent by start
            latest = try await send(operation, update: update, session: transition.session)
        }
        return CommandOutcome(session: latest, repeated: transition.repeated)
    }

    /// Sends `update` with the key the session holds for it; returns the session after
    /// Twilio's answer was applied.
    private func send(
        _ operation: PaymentOperation, update: PaymentUpdate, session: PaymentSession
    ) async throws(FlowError) -> PaymentSession {
        guard let sid = session.paymentSID else { throw .rejected(.stillStarting) }
        let url = try await callbackURL(for: session.id).url
        let key = session.inFlight[operation] ?? TwilioPaymentsClient.makeIdempotencyKey()
        let resource: PaymentResource
        do {
            resource = try await api.updatePayment(
                callSID: session.callSID, paymentSID: sid, update: update,
                idempotencyKey: key, statusCallback: url)
        } catch {
            _ = try? await mutate(id: session.id) {
                PaymentReducer.reduce($0, .requestFailed(operation, reason: error.description, at: self.now()))
            }
            if let code = error.code, TwilioErrorCatalog.callGoneCodes.contains(code) {
                _ = try? await mutate(id: session.id) {
                    PaymentReducer.reduce($0, .callEnded(at: self.now(), status: nil))
                }
                throw .callEnded(callSID: session.callSID, status: nil)
            }
            throw .twilio(error)
        }
        guard let accepted = operation.accepted(at: now(), twilioDate: resource.dateUpdated) else { return session }
        return try await mutate(id: session.id, from: session) { PaymentReducer.reduce($0, accepted) }.session
    }

    /// The StatusCallback URL for `secret`.
    /// The callback URL of session `id`, and the secret in it (derived from the key, never stored).
    private func callbackURL(for id: String) async throws(FlowError) -> (url: String, secret: String) {
        do {
            let secret = CallbackSecretHash.secret(for: id, key: try await callbackKey.callbackKey())
            return (try await callbackURLs.callbackURL(secret: secret), secret)
        } catch {
            throw .callbackUnavailable(String(describing: error))
        }
    }

    /// Reduces against the stored session (or `known`, when it was just read or written) and
    /// stores the result, re-reading and retrying if another writer got there first; announces
    /// every change on the feed.
    ///
    /// `known` from the published snapshot (`fromSnapshot`) may be a version behind the store
    /// (the snapshot hears of a write after it is stored): a change made from it loses the
    /// compare-and-set, and a step that changes nothing in it is tried again on the stored
    /// session, since a callback that is news to the stored version may look like nothing to an
    /// older one (a capture the snapshot does not know was requested yet).
    private nonisolated(nonsending) func mutate(
        id: String, from known: PaymentSession? = nil, fromSnapshot: Bool = false,
        _ step: (PaymentSession) -> Transition
    ) async throws(FlowError) -> Transition {
        var candidate = known
        var confirmed = !fromSnapshot
        for _ in 0..<8 {
            let current: PaymentSession
            if let candidate {
                current = candidate
            } else {
                guard
                    let session = try await stored({ () async throws(PaymentStoreError) in
                        try await store.session(id: id)
                    })
                else {
                    throw .sessionGone
                }
                current = session
                confirmed = true
            }
            let transition = step(current)
            guard transition.changed else {
                if confirmed { return transition }
                candidate = nil
                continue
            }
            let session = transition.session
            let news = notices == nil ? [] : PaymentNotice.notices(from: current, to: session, at: now())
            if try await storeChange(session, expectedVersion: current.version, notices: news) {
                FlowMetrics.changed(from: current, to: session, at: now())
                published.offer(transition.session)
                await feed.publish(transition.session)
                if let notices, !news.isEmpty { await notices.publish(news) }
                // Exactly one writer wins the change to a finished phase.
                if !current.phase.isFinished, session.phase.isFinished {
                    await settle(session)
                    resumeRecordingsLater(of: session)
                }
                return transition
            }
            candidate = nil
        }
        throw .conflict
    }

    /// Stores a change, with the outbox messages of its notices when the notice sink delivers from
    /// an outbox the store keeps (one transaction: the change and its messages, or neither).
    private nonisolated(nonsending) func storeChange(
        _ session: PaymentSession, expectedVersion: UInt64, notices news: [PaymentNotice]
    ) async throws(FlowError) -> Bool {
        if !news.isEmpty, let outboxStore = store as? any PaymentOutboxStore,
            let messages = notices?.outboxMessages(for: news)
        {
            return try await stored(as: "write") { () async throws(PaymentStoreError) in
                try await outboxStore.compareAndSet(session, expectedVersion: expectedVersion, messages: messages)
            }
        }
        return try await stored(as: "write") { () async throws(PaymentStoreError) in
            try await store.compareAndSet(session, expectedVersion: expectedVersion)
        }
    }

    /// Runs one store request; a store that cannot answer becomes ``FlowError/storeUnavailable(_:)``.
    ///
    /// Inside a tool call, a span each (`payment store read`, `payment store write`). Inside a
    /// callback, an event on the callback's span instead, with its duration
    /// (`payment.store.duration_ms`): a callback stays one span, which is what keeps a full
    /// export affordable at thousands of callbacks a second (Docs/benchmarks.md). Outside a
    /// traced operation (maintenance's expiry and silent-call sweeps, the receiver's secret check
    /// before a refusal), nothing: a trace of one span every few seconds is noise.
    private nonisolated(nonsending) func stored<T>(
        as operation: String = "read", _ request: () async throws(PaymentStoreError) -> T
    ) async throws(FlowError) -> T {
        if let callback = CallbackSpan.current {
            return try await storedAsEvent(of: callback, operation, request)
        }
        let span = ServiceContext.current == nil ? nil : startSpan("payment store \(operation)", ofKind: .client)
        defer { span?.end() }
        do {
            return try await request()
        } catch {
            span?.attributes["error.type"] = "store_unavailable"
            span?.setStatus(SpanStatus(code: .error))
            throw .storeUnavailable(error.reason)
        }
    }

    /// A store request inside a callback, recorded as an event on the callback's span.
    private nonisolated(nonsending) func storedAsEvent<T>(
        of callback: any Span, _ operation: String, _ request: () async throws(PaymentStoreError) -> T
    ) async throws(FlowError) -> T {
        guard callback.isRecording else {
            do { return try await request() } catch { throw .storeUnavailable(error.reason) }
        }
        let instant = DefaultTracerClock.now
        let started = ContinuousClock.now
        let outcome: Result<T, PaymentStoreError>
        do { outcome = .success(try await request()) } catch { outcome = .failure(error) }
        let elapsed = ContinuousClock.now - started
        var attributes: SpanAttributes = [
            "payment.store.duration_ms": .double(
                Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15)
        ]
        if case .failure = outcome { attributes["error.type"] = "store_unavailable" }
        callback.addEvent(SpanEvent(name: "payment store \(operation)", at: instant, attributes: attributes))
        switch outcome {
        case .success(let value): return value
        case .failure(let error): throw .storeUnavailable(error.reason)
        }
    }

    /// Runs `body` in a span of its own that starts a trace (what arrives from Twilio is not
    /// part of any caller's request), linked to the trace the payment was started in when this
    /// process remembers it (``traces``): `body` names the call to `linkTo`. The store requests
    /// inside are events on it (``stored(as:_:)``).
    private nonisolated(nonsending) func tracedCallback<T: Sendable>(
        _ name: String,
        _ body: (_ linkTo: @Sendable (String?) -> Void) async throws(FlowError) -> T
    ) async throws(FlowError) -> T {
        let span = startSpan(name, context: .topLevel, ofKind: .server)
        defer { span.end() }
        let traces = traces
        let link: @Sendable (String?) -> Void = { sid in
            if let sid, span.isRecording, let started = traces.context(ofCall: sid) {
                span.addLink(SpanLink(context: started, attributes: [:]))
            }
        }
        let result: Result<T, FlowError> = await ServiceContext.withValue(span.context) {
            await CallbackSpan.$current.withValue(span) {
                do throws(FlowError) {
                    return .success(try await body(link))
                } catch {
                    return .failure(error)
                }
            }
        }
        if case .failure = result { span.setStatus(SpanStatus(code: .error)) }
        return try result.get()
    }

    // MARK: Events from outside

    /// Whether `secret` belongs to a stored session: the receiver answers 404 when not. Throws
    /// ``FlowError/storeUnavailable(_:)`` when the store cannot say (the receiver answers 503).
    public nonisolated func knowsCallbackSecret(_ secret: String) async throws(FlowError) -> Bool {
        let hash = CallbackSecretHash.of(secret)
        return try await stored({ () async throws(PaymentStoreError) in
            try await store.session(callbackSecretHash: hash)
        }) != nil
    }

    /// Applies an authenticated status callback that arrived on the URL with `secret`, in
    /// whichever replica it arrived. Returns `false` when the secret names no session. Throws
    /// when the callback could not be applied and stored (the store is away, or other writers
    /// kept winning): the receiver then answers 503, so the callback is not taken as delivered.
    ///
    /// Not isolated to the coordinator: a callback runs where its request runs (with NIO's loops
    /// as the executor, the loop of its connection) instead of queueing for the actor and coming
    /// back. It touches none of the actor's state. Callbacks on one session take turns in the
    /// order they arrived (``SessionTurns``); with other writers (a tool's command, another
    /// replica) the store's compare-and-set decides, and the loser reads the session again.
    @discardableResult
    public nonisolated func receiveCallback(
        secret: String, _ callback: PaymentStatusCallback
    ) async throws(FlowError) -> Bool {
        try await tracedCallback("payment callback") { (linkTo) async throws(FlowError) -> Bool in
            linkTo(callback.callSID?.rawValue)
            return try await receiveCallbackUntraced(secret: secret, callback)
        }
    }

    private nonisolated func receiveCallbackUntraced(
        secret: String, _ callback: PaymentStatusCallback
    ) async throws(FlowError) -> Bool {
        let hash = CallbackSecretHash.of(secret)
        // One at a time per session (its URL's secret), in the order they arrived.
        await callbackTurns.begin(hash)
        defer { callbackTurns.end(hash) }
        let session: PaymentSession
        // The published snapshot's version when it is this URL's session: the compare-and-set
        // below decides whether it is still the stored one (if not, `mutate` reads the session
        // again and retries), so a callback costs one statement, not a read and a write.
        let snapshot = callback.paymentSID.flatMap { published.session($0) }.flatMap {
            $0.callbackSecretHash == hash ? $0 : nil
        }
        if let snapshot {
            session = snapshot
        } else {
            guard
                let found = try await stored({ () async throws(PaymentStoreError) in
                    try await store.session(callbackSecretHash: hash)
                })
            else {
                return false
            }
            session = found
        }
        let changed: PaymentSession
        do {
            changed = try await mutate(id: session.id, from: session, fromSnapshot: snapshot != nil) {
                PaymentReducer.reduce($0, .callbackReceived(callback, at: self.now()))
            }.session
        } catch .sessionGone {
            return false
        }
        // The caller's keypresses (partial results) are progress, not actions: not recorded.
        guard callback.partialResult != true || callback.errorType != nil else { return true }
        await record(
            AuditEntry(
                at: now(), replica: replica, actor: "twilio", action: AuditAction.callbackAccepted.rawValue,
                outcome: "ok", callSID: changed.callSID.rawValue, paymentSID: changed.paymentSID?.rawValue,
                detail: callback.auditDetail))
        return true
    }

    /// Ends every unfinished session on `callSID` (the call hung up).
    public func callEnded(_ callSID: CallSID, status: String? = nil) async throws(FlowError) {
        for session in try await stored({ () async throws(PaymentStoreError) in
            try await store.sessions(onCall: callSID)
        }) where !session.phase.isFinished {
            let ended = try await mutate(id: session.id, from: session) {
                PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status))
            }.session
            await record(
                AuditEntry(
                    at: now(), replica: replica, actor: "system", action: AuditAction.callEnded.rawValue,
                    outcome: "ok", callSID: ended.callSID.rawValue, paymentSID: ended.paymentSID?.rawValue,
                    detail: status.map { "call status \($0)" }))
        }
    }

    /// What Twilio's Calls API says of a call.
    private enum CallState {
        case inProgress
        /// Over: Twilio reports this status (or no longer knows the call).
        case ended(String?)
        /// Not known: Twilio could not be asked; the caller carries on.
        case unknown
    }

    private func callState(_ callSID: CallSID) async -> CallState {
        do {
            let call = try await api.fetchCall(callSID)
            guard let status = call.rawStatus else { return .unknown }
            return call.isActive ? .inProgress : .ended(status)
        } catch {
            if error.code == 20404 { return .ended("not found") }
            return .unknown
        }
    }

    /// Asks Twilio for the call of every active session that has heard nothing for `silence`
    /// (and was not checked within that time), and ends the sessions whose call is over: a
    /// caller who hangs up while no capture runs may send no callback at all. Returns how many
    /// sessions ended.
    @discardableResult
    public func checkSilentCalls(silentFor silence: Duration) async throws(FlowError) -> Int {
        let cutoff = now().addingTimeInterval(-Self.seconds(silence))
        var ended = 0
        // A millisecond's margin over the exact test that follows, for stores whose timestamps
        // are rounded.
        let before = cutoff.addingTimeInterval(0.001)
        let idle = try await stored({ () async throws(PaymentStoreError) in
            try await store.idleSessions(updatedBefore: before)
        })
        for session in idle {
            guard let sid = session.paymentSID, session.updatedAt <= cutoff,
                (lastCallCheck[sid] ?? .distantPast) <= cutoff
            else { continue }
            lastCallCheck[sid] = now()
            if case .ended(let status) = await callState(session.callSID) {
                if (try? await mutate(id: session.id) {
                    PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status))
                })?.changed == true {
                    ended += 1
                }
            }
        }
        // A check is remembered while its session stays idle: one that finished, was forgotten
        // or changed since is checked again once it is silent again for `silence`, which is
        // what forgetting its check would decide too (one read for the whole sweep, where a
        // read per remembered check would have been thousands at a busy hour).
        let stillIdle = Set(idle.lazy.compactMap(\.paymentSID))
        lastCallCheck = lastCallCheck.filter { stillIdle.contains($0.key) }
        return ended
    }

    /// Forgets finished sessions not updated for `retention` (their callback URLs with them);
    /// returns how many.
    @discardableResult
    public func expireFinished(retention: Duration) async throws(FlowError) -> Int {
        let cutoff = now().addingTimeInterval(-Self.seconds(retention))
        let expired = try await stored({ () async throws(PaymentStoreError) in
            try await store.expireFinished(updatedBefore: cutoff)
        })
        published.removeFinished(updatedBefore: cutoff)
        // Yesterday's totals stay (a day in another time zone may still be running); older go.
        _ = try? await ledger.expire(before: ChargeAuthorization.day(of: now().addingTimeInterval(-86_400)), now: now())
        return expired
    }

    // MARK: Queries

    public func session(_ paymentSID: PaymentSID) async throws(FlowError) -> PaymentSession? {
        let session = try await stored({ () async throws(PaymentStoreError) in try await store.session(paymentSID) })
        if let session { published.offer(session) }
        return session
    }

    /// The newest version of the session, without waiting on the actor or the store: what
    /// frequent status reads use. Only while someone runs ``followChanges()`` (the payments
    /// system does), so that changes other coordinators and replicas make reach it through the
    /// change feed; otherwise, and for a session it has not seen, `nil` (then ask ``session(_:)``).
    public nonisolated func publishedSession(_ paymentSID: PaymentSID) -> PaymentSession? {
        published.session(paymentSID)
    }

    /// The published snapshot of the session if there is one, else the stored session.
    public nonisolated func latestSession(_ paymentSID: PaymentSID) async throws(FlowError) -> PaymentSession? {
        if let session = published.session(paymentSID) { return session }
        return try await session(paymentSID)
    }

    public func activeSessions() async throws(FlowError) -> [PaymentSession] {
        try await stored({ () async throws(PaymentStoreError) in try await store.activeSessions() })
    }

    public func sessions(onCall callSID: CallSID) async throws(FlowError) -> [PaymentSession] {
        try await stored({ () async throws(PaymentStoreError) in try await store.sessions(onCall: callSID) })
    }

    /// Keeps the published snapshot current from the change feed until the task is cancelled
    /// (the snapshot is used only meanwhile). What this coordinator saw before it follows is
    /// dropped, since changes made meanwhile by others were not seen.
    public nonisolated func followChanges() async {
        let changes = await feed.subscribe()
        published.startFollowing()
        defer { published.stopFollowing() }
        for await session in changes {
            published.offer(session)
        }
    }

    // MARK: Change feed

    /// Every change to any session, as snapshots, from now on.
    public func changes() async -> AsyncStream<PaymentSession> {
        await feed.subscribe()
    }

    /// The session once its version exceeds `version`, or as it stands after `timeout`
    /// (long polling for clients that cannot subscribe). `nil` if the session is unknown.
    public func waitForChange(
        _ paymentSID: PaymentSID, afterVersion version: UInt64, timeout: Duration
    ) async throws(FlowError) -> PaymentSession? {
        // Subscribe before reading, so a change between the two is not missed.
        let changes = await feed.subscribe()
        guard
            let current = try await stored({ () async throws(PaymentStoreError) in try await store.session(paymentSID) }
            )
        else { return nil }
        if current.version > version || current.phase.isFinished || timeout <= .zero { return current }
        waiting[paymentSID, default: 0] += 1
        FlowMetrics.longPollWaiting(true)
        defer {
            waiting[paymentSID, default: 1] -= 1
            FlowMetrics.longPollWaiting(false)
        }
        let changed = await withTaskGroup(of: PaymentSession?.self) { group -> PaymentSession? in
            group.addTask {
                for await session in changes
                where session.paymentSID == paymentSID && (session.version > version || session.phase.isFinished) {
                    return session
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        FlowMetrics.longPollEnded(changed: changed != nil)
        if let changed { return changed }
        return try await stored({ () async throws(PaymentStoreError) in try await store.session(paymentSID) })
    }

    /// How many long polls wait on `paymentSID` now (tests use it to act only once one waits).
    func waiterCount(_ paymentSID: PaymentSID) -> Int {
        waiting[paymentSID] ?? 0
    }
}

/// The newest known version of each session, by payment SID, behind a lock rather than an
/// actor; kept only while the change feed is followed (``PaymentCoordinator/followChanges()``).
final class PublishedSessions: Sendable {
    private let state = Mutex<(following: Int, sessions: [PaymentSID: SessionBox])>((0, [:]))

    func offer(_ session: PaymentSession) {
        guard let sid = session.paymentSID else { return }
        state.withLock { state in
            guard state.following > 0 else { return }
            if let known = state.sessions[sid]?.session, known.id == session.id, known.version >= session.version {
                return
            }
            state.sessions[sid] = SessionBox(session)
        }
    }

    func session(_ sid: PaymentSID) -> PaymentSession? {
        state.withLock { $0.following > 0 ? $0.sessions[sid]?.session : nil }
    }

    func startFollowing() {
        state.withLock { state in
            if state.following == 0 { state.sessions = [:] }
            state.following += 1
        }
    }

    func stopFollowing() {
        state.withLock { state in
            state.following -= 1
            if state.following == 0 { state.sessions = [:] }
        }
    }

    func removeFinished(updatedBefore cutoff: Date) {
        state.withLock { state in
            state.sessions = state.sessions.filter {
                !($0.value.session.phase.isFinished && $0.value.session.updatedAt < cutoff)
            }
        }
    }
}
