public import Foundation
public import TwilioPayments

/// Why the coordinator could not do what was asked.
public enum FlowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The session's rules refuse the request; nothing was sent to Twilio.
    case rejected(String)
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

    public var description: String {
        switch self {
        case .rejected(let reason): return "Refused: \(reason)."
        case .sessionInProgress(let call, let payment?):
            return "A payment session (\(payment)) is already running on call \(call); complete or cancel it first."
        case .sessionInProgress(let call, nil):
            return "A payment session is already starting on call \(call); wait for it, then complete or cancel it."
        case .unknownSession(let sid): return "No payment session \(sid) is known to this server."
        case .wrongCall(let payment, let call): return "Payment session \(payment) does not belong to call \(call)."
        case .twilio(let error): return error.description
        case .callbackUnavailable(let reason): return "No status callback URL is available: \(reason)."
        case .callEnded(let call, let status):
            return "The call \(call) has ended\(status.map { " (Twilio reports it \($0))" } ?? ""); the payment cannot continue on it."
        }
    }
}

/// Runs payment sessions: it applies every event through ``PaymentReducer``, performs the
/// REST calls the reducer asks for (one idempotency key per logical operation), keeps the
/// sessions in a ``PaymentStore``, and publishes every change.
///
/// One session per call at a time; any number of calls at once. Callbacks are matched to their
/// session by the unguessable path secret in their URL, and a callback that arrives before
/// Twilio's create response is held and applied once the session exists, never lost.
public actor PaymentCoordinator {
    private let api: any TwilioPaymentsAPI
    private let store: any PaymentStore
    private let callbackURLs: any CallbackURLProvider
    private let now: @Sendable () -> Date

    private struct Starting {
        var session: PaymentSession
        var earlyCallbacks: [PaymentStatusCallback] = []
    }

    /// Sessions being created, by path secret.
    private var starting: [String: Starting] = [:]
    /// Path secret → payment SID, for created sessions.
    private var sessionBySecret: [String: PaymentSID] = [:]
    private var secretBySession: [PaymentSID: String] = [:]
    private var callbackURLBySecret: [String: String] = [:]
    private var subscribers: [UUID: AsyncStream<PaymentSession>.Continuation] = [:]
    /// When each session's call was last checked by ``checkSilentCalls(silentFor:)``.
    private var lastCallCheck: [PaymentSID: Date] = [:]
    private var waiters: [PaymentSID: [UUID: CheckedContinuation<Void, Never>]] = [:]

    public init(api: any TwilioPaymentsAPI, store: any PaymentStore = InMemoryPaymentStore(),
                callbackURLs: any CallbackURLProvider, now: @escaping @Sendable () -> Date = { Date() }) {
        self.api = api
        self.store = store
        self.callbackURLs = callbackURLs
        self.now = now
    }

    // MARK: Commands

    /// Starts a payment session on `callSID`.
    public func start(callSID: CallSID, options: PaymentSessionOptions) async throws(FlowError) -> PaymentSession {
        if let running = await store.sessions(onCall: callSID).first(where: { !$0.phase.isFinished }) {
            throw .sessionInProgress(callSID: callSID, paymentSID: running.paymentSID)
        }
        if starting.values.contains(where: { $0.session.callSID == callSID }) {
            throw .sessionInProgress(callSID: callSID, paymentSID: nil)
        }
        let problems = options.validate()
        if !problems.isEmpty { throw .twilio(.invalidRequest(problems)) }

        let secret = PathSecret.make()
        starting[secret] = Starting(session: PaymentSession(callSID: callSID, configuration: PaymentConfiguration(options: options), at: now()))
        defer { starting.removeValue(forKey: secret) }
        let url: String
        do {
            url = try await callbackURLs.callbackURL(secret: secret)
        } catch {
            throw .callbackUnavailable(String(describing: error))
        }
        callbackURLBySecret[secret] = url

        let resource: PaymentResource
        do {
            resource = try await api.createPayment(callSID: callSID, options: options,
                                                   idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey(), statusCallback: url)
        } catch {
            callbackURLBySecret.removeValue(forKey: secret)
            throw .twilio(error)
        }

        guard let pending = starting[secret] else { throw .rejected("the session disappeared while starting") }
        var session = PaymentReducer.reduce(pending.session, .sessionCreated(resource.sid, at: now())).session
        for callback in pending.earlyCallbacks {
            session = PaymentReducer.reduce(session, .callbackReceived(callback, at: now())).session
        }
        guard await store.compareAndSet(session, expectedVersion: nil) else {
            throw .rejected("payment session \(resource.sid) already exists")
        }
        // Callbacks that arrived while the session was being stored are still held in
        // `starting`; from here on (no suspension until the map is updated) new ones go
        // straight to the store.
        let late = starting[secret]?.earlyCallbacks.dropFirst(pending.earlyCallbacks.count) ?? []
        starting.removeValue(forKey: secret)
        sessionBySecret[secret] = resource.sid
        secretBySession[resource.sid] = secret
        publish(session)
        for callback in late {
            _ = try? await mutate(resource.sid) { PaymentReducer.reduce($0, .callbackReceived(callback, at: self.now())) }
        }
        return await store.session(resource.sid) ?? session
    }

    /// Asks the caller's keypad for `item`.
    public func capture(_ item: PaymentItem, paymentSID: PaymentSID, callSID: CallSID? = nil) async throws(FlowError) -> PaymentSession {
        try await run(.captureRequested(item, at: now()), paymentSID: paymentSID, callSID: callSID)
    }

    /// Completes the session: charges or tokenizes. Refused, naming them, while items are missing.
    public func complete(paymentSID: PaymentSID, callSID: CallSID? = nil) async throws(FlowError) -> PaymentSession {
        try await run(.completeRequested(at: now()), paymentSID: paymentSID, callSID: callSID)
    }

    /// Cancels the session. Final: a new attempt needs a new session.
    public func cancel(paymentSID: PaymentSID, callSID: CallSID? = nil) async throws(FlowError) -> PaymentSession {
        try await run(.cancelRequested(at: now()), paymentSID: paymentSID, callSID: callSID)
    }

    /// Applies a request event, performs the REST call it asks for, and applies the outcome.
    /// First it asks Twilio whether the call is still up (no callback tells of a silent
    /// hang-up): a call that has ended ends the session as `call-ended` instead.
    private func run(_ request: PaymentEvent, paymentSID: PaymentSID, callSID: CallSID?) async throws(FlowError) -> PaymentSession {
        guard let current = await store.session(paymentSID) else { throw .unknownSession(paymentSID) }
        if let callSID, current.callSID != callSID { throw .wrongCall(paymentSID: paymentSID, callSID: callSID) }
        if !current.phase.isFinished, case .ended(let status) = await callState(current.callSID) {
            let ended = try await mutate(paymentSID) { PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status)) }
            if case .cancelRequested = request { return ended.session }
            throw .callEnded(callSID: current.callSID, status: status)
        }
        let transition = try await mutate(paymentSID) { PaymentReducer.reduce($0, request) }
        if let rejection = transition.rejection { throw .rejected(rejection.description) }
        for case .send(let operation) in transition.effects {
            try await send(operation, session: transition.session)
        }
        return await store.session(paymentSID) ?? transition.session
    }

    private func send(_ operation: PaymentOperation, session: PaymentSession) async throws(FlowError) {
        guard let sid = session.paymentSID, let secret = secretBySession[sid], let url = callbackURLBySecret[secret] else {
            throw .rejected("the session has no status callback URL")
        }
        let update: PaymentUpdate
        switch operation {
        case .create: return
        case .capture(let item): update = .capture(item.capture)
        case .complete: update = .status(.complete)
        case .cancel: update = .status(.cancel)
        }
        let resource: PaymentResource
        do {
            resource = try await api.updatePayment(callSID: session.callSID, paymentSID: sid, update: update,
                                                   idempotencyKey: TwilioPaymentsClient.makeIdempotencyKey(), statusCallback: url)
        } catch {
            _ = try? await mutate(sid) { PaymentReducer.reduce($0, .requestFailed(operation, reason: error.description, at: self.now())) }
            if let code = error.code, TwilioErrorCatalog.callGoneCodes.contains(code) {
                _ = try? await mutate(sid) { PaymentReducer.reduce($0, .callEnded(at: self.now(), status: nil)) }
                throw .callEnded(callSID: session.callSID, status: nil)
            }
            throw .twilio(error)
        }
        let accepted: PaymentEvent
        switch operation {
        case .create: return
        case .capture(let item): accepted = .captureAccepted(item, at: now(), twilioDate: resource.dateUpdated)
        case .complete: accepted = .completeAccepted(at: now())
        case .cancel: accepted = .cancelAccepted(at: now())
        }
        _ = try await mutate(sid) { PaymentReducer.reduce($0, accepted) }
    }

    /// Reduces against the stored session and stores the result, retrying if another writer
    /// got there first.
    private func mutate(_ paymentSID: PaymentSID, _ step: (PaymentSession) -> Transition) async throws(FlowError) -> Transition {
        for _ in 0..<8 {
            guard let current = await store.session(paymentSID) else { throw .unknownSession(paymentSID) }
            let transition = step(current)
            guard transition.changed else { return transition }
            if await store.compareAndSet(transition.session, expectedVersion: current.version) {
                publish(transition.session)
                return transition
            }
        }
        throw .rejected("the session kept changing under this request; try again")
    }

    // MARK: Events from outside

    /// Whether `secret` names a session (starting or created): the receiver answers 404 when not.
    public func knowsCallbackSecret(_ secret: String) -> Bool {
        starting[secret] != nil || sessionBySecret[secret] != nil
    }

    /// Applies an authenticated status callback that arrived on the URL with `secret`.
    /// Returns `false` when the secret names no session.
    @discardableResult
    public func receiveCallback(secret: String, _ callback: PaymentStatusCallback) async -> Bool {
        if starting[secret] != nil {
            starting[secret]?.earlyCallbacks.append(callback)
            return true
        }
        guard let sid = sessionBySecret[secret] else { return false }
        _ = try? await mutate(sid) { PaymentReducer.reduce($0, .callbackReceived(callback, at: self.now())) }
        return true
    }

    /// Ends every unfinished session on `callSID` (the call hung up).
    public func callEnded(_ callSID: CallSID, status: String? = nil) async {
        for session in await store.sessions(onCall: callSID) where !session.phase.isFinished {
            guard let sid = session.paymentSID else { continue }
            _ = try? await mutate(sid) { PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status)) }
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
    public func checkSilentCalls(silentFor silence: Duration) async -> Int {
        let seconds = Double(silence.components.seconds) + Double(silence.components.attoseconds) / 1e18
        let cutoff = now().addingTimeInterval(-seconds)
        var ended = 0
        for session in await store.activeSessions() {
            guard let sid = session.paymentSID, !session.phase.isFinished, session.updatedAt <= cutoff,
                  (lastCallCheck[sid] ?? .distantPast) <= cutoff else { continue }
            lastCallCheck[sid] = now()
            if case .ended(let status) = await callState(session.callSID) {
                if (try? await mutate(sid) { PaymentReducer.reduce($0, .callEnded(at: self.now(), status: status)) })?.changed == true { ended += 1 }
            }
        }
        for sid in lastCallCheck.keys where await store.session(sid)?.phase.isFinished ?? true {
            lastCallCheck.removeValue(forKey: sid)
        }
        return ended
    }

    /// Forgets finished sessions not updated for `retention`; returns how many.
    @discardableResult
    public func expireFinished(retention: Duration) async -> Int {
        let seconds = Double(retention.components.seconds) + Double(retention.components.attoseconds) / 1e18
        let count = await store.expireFinished(updatedBefore: now().addingTimeInterval(-seconds))
        for (sid, secret) in secretBySession where await store.session(sid) == nil {
            secretBySession.removeValue(forKey: sid)
            sessionBySecret.removeValue(forKey: secret)
            callbackURLBySecret.removeValue(forKey: secret)
            await callbackURLs.retire(secret: secret)
        }
        return count
    }

    // MARK: Queries

    public func session(_ paymentSID: PaymentSID) async -> PaymentSession? {
        await store.session(paymentSID)
    }

    public func activeSessions() async -> [PaymentSession] {
        await store.activeSessions()
    }

    public func sessions(onCall callSID: CallSID) async -> [PaymentSession] {
        await store.sessions(onCall: callSID)
    }

    // MARK: Change feed

    /// Every change to any session, as snapshots, from now on.
    public func changes() -> AsyncStream<PaymentSession> {
        let (stream, continuation) = AsyncStream<PaymentSession>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let id = UUID()
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeSubscriber(id) }
        }
        return stream
    }

    private func removeSubscriber(_ id: UUID) {
        subscribers.removeValue(forKey: id)
    }

    /// The session once its version exceeds `version`, or as it stands after `timeout`
    /// (long polling for clients that cannot subscribe). `nil` if the session is unknown.
    public func waitForChange(_ paymentSID: PaymentSID, afterVersion version: UInt64, timeout: Duration) async -> PaymentSession? {
        guard let current = await store.session(paymentSID) else { return nil }
        if current.version > version || current.phase.isFinished || timeout <= .zero { return current }
        let id = UUID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.wake(paymentSID, id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiters[paymentSID, default: [:]][id] = continuation
            }
        } onCancel: {
            Task { await self.wake(paymentSID, id) }
        }
        timer.cancel()
        return await store.session(paymentSID)
    }

    /// How many long polls wait on `paymentSID` now (tests use it to act only once one waits).
    func waiterCount(_ paymentSID: PaymentSID) -> Int {
        waiters[paymentSID]?.count ?? 0
    }

    private func wake(_ paymentSID: PaymentSID, _ id: UUID) {
        waiters[paymentSID]?.removeValue(forKey: id)?.resume()
    }

    private func publish(_ session: PaymentSession) {
        for continuation in subscribers.values { continuation.yield(session) }
        if let sid = session.paymentSID, let waiting = waiters.removeValue(forKey: sid) {
            for continuation in waiting.values { continuation.resume() }
        }
    }
}
