import MCPCore
import PaymentFlow
import TwilioPayments
import Foundation
import Logging
import Synchronization

/// The tools: start, capture, complete, cancel, status.
///
/// Made for voice agents first: their frameworks pass the model only tool results (no
/// resources, notifications or prompts), time a call out after about 5 s, retry calls, cancel
/// them when the caller talks and read only text. So every result is one JSON object (one text
/// block, and the same object as `structuredContent`); no call outlasts the server's longest
/// wait (``PaymentsMCP/maximumWait``); repeats are harmless; a cancelled or timed-out request
/// ends only its own wait, while the command it started runs to its end in a task of its own;
/// and every optional argument may be `null`.
extension PaymentsMCP {
    // MARK: Tools

    static let callSIDSchema: JSONValue = [
        "type": ["string", "null"], "pattern": "^CA[0-9a-fA-F]{32}$",
        "description":
            "The Twilio Call SID of the caller's call (the PSTN leg that carries the keypad tones). May be omitted when the X-Twilio-Call-Sid header supplies it.",
    ]
    static let paymentSIDSchema: JSONValue = [
        "type": ["string", "null"], "pattern": "^PK[0-9a-fA-F]{32}$",
        "description":
            "The Payment SID that startPaymentCapture returned. May be omitted when callSid (or the X-Twilio-Call-Sid header) is given: the call's current payment session is used.",
    ]

    /// `schema` made optional for strict models: `null` added to its types (and to its `enum`).
    static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var members) = schema else { return schema }
        switch members["type"] {
        case .string(let type)?: members["type"] = [.string(type), "null"]
        case .array(let types)? where !types.contains("null"): members["type"] = .array(types + ["null"])
        default: break
        }
        if case .array(let values)? = members["enum"], !values.contains(.null) {
            members["enum"] = .array(values + [.null])
        }
        return .object(members)
    }

    var waitSecondsSchema: JSONValue {
        [
            "type": ["number", "null"], "minimum": 0, "maximum": 60,
            "description": .string(
                "Also wait up to this many seconds for the caller (or Twilio) before answering. The server answers every call within \(MCPNextStep.spoken(maximumWaitSeconds)) seconds (AGENT_PAYMENTS_MAX_WAIT_SECONDS): a longer wait is shortened to that."
            ),
        ]
    }

    func tools() -> [Tool] {
        var tools: [Tool] = [startTool()]
        for item in PaymentItem.entries { tools.append(captureTool(item)) }
        tools.append(completeTool())
        tools.append(cancelTool())
        tools.append(statusTool())
        return tools
    }

    // MARK: Results

    /// A session as a tool result: one JSON object, the status plus `message` and the call's
    /// `flags`, as the one text block and as `structuredContent`. Commands log at info; status
    /// reads, which agents repeat, at `level`. The status of each session version is built,
    /// redacted and checked once (``RenderedStatuses``); the object with the call's own members
    /// is serialized per call.
    func result(
        _ session: PaymentSession, said: String? = nil, flags: [String: JSONValue] = [:], level: Logger.Level = .info
    ) -> ToolResult {
        logger.log(
            level: level, "payment tool result",
            metadata: [
                "call.sid": "\(session.callSID)", "payment.sid": "\(session.paymentSID?.rawValue ?? "-")",
                "payment.phase": "\(session.phase.name)", "payment.version": "\(session.version)",
                "next.tool": "\(MCPNextStep(session.nextStep).tool?.rawValue ?? "-")",
                "client": "\(RequestContext.current?.principal.id ?? "-")",
            ])
        let rendered = rendering(session)
        if said == nil, flags.isEmpty { return rendered.plain }
        return toolResult(rendered.status, conforms: rendered.conforms, said: said, flags: flags, session: session)
    }

    /// A tool result of a rendered status: its members, `flags`, and the `message` (what was
    /// `said`, then the next step's instruction), redacted.
    func toolResult(
        _ status: JSONValue, conforms: Bool, said: String?, flags: [String: JSONValue], session: PaymentSession
    ) -> ToolResult {
        guard case .object(var members) = status else { return ToolResult(structured: status) }
        for (key, value) in flags { members[key] = value }
        let next = session.nextStep.instruction
        members["message"] = .string(redactor.redact(said.map { $0 + " " + next } ?? next))
        var result = ToolResult(structured: .object(members))
        result.structuredContentValidated = conforms
        return result
    }

    /// Checks each rendered status once against the status schema.
    static let statusValidator = JSONSchemaValidator(schema: SessionJSON.schema)

    /// The status of `session`'s version, built, redacted and serialized once.
    func rendering(_ session: PaymentSession) -> RenderedStatuses.Entry {
        rendered.status(of: session) {
            let status = redactor.redact(
                SessionJSON.status(session, waitSeconds: maximumWaitSeconds), keeping: SessionJSON.resultKeys)
            let conforms = Self.statusValidator.validate(status, rootName: "structuredContent").isEmpty
            return RenderedStatuses.Entry(
                version: session.version, status: status, text: status.serialized(), conforms: conforms,
                plain: toolResult(status, conforms: conforms, said: nil, flags: [:], session: session))
        }
    }

    /// A refusal: `isError`, one JSON object `{"error": {reason, message, retryable, whatToDo, …},
    /// "message"}` (as the text block and `structuredContent`), with the session's `nextStep`
    /// when the refused request named a session the server knows.
    func failure(_ refusal: Refusal) -> ToolResult {
        logger.warning(
            "tool refused: \(redactor.redact(refusal.message))",
            metadata: ["reason": "\(refusal.reason)", "client": "\(RequestContext.current?.principal.id ?? "-")"])
        let result = ToolResult.refusal(
            reason: refusal.reason, message: refusal.message, retryable: refusal.retryable,
            whatToDo: refusal.whatToDo, details: refusal.details, extra: refusal.extra)
        return ToolResult(structured: redactor.redact(result.structuredContent ?? .null), isError: true)
    }

    /// Why a tool call was refused, as the result will say it.
    struct Refusal: Error {
        var reason: String
        var message: String
        var retryable: Bool
        var whatToDo: String
        var details: [String: JSONValue] = [:]
        var extra: [String: JSONValue] = [:]
    }

    /// The refusal of a flow error; `session`, when known, lends its next step.
    func refusal(_ error: FlowError, session: PaymentSession? = nil) -> Refusal {
        var refusal = Refusal(
            reason: Self.reasonCode(error), message: error.description, retryable: error.isRetryable,
            whatToDo: Self.whatToDo(error, waitSeconds: maximumWaitSeconds))
        if case .twilio(let twilio) = error, case .api(let api) = twilio {
            refusal.details["twilioCode"] = api.code.map { .integer(Int64($0)) }
            refusal.details["meaning"] = api.explanation.map(JSONValue.string)
            if let remedy = api.remedy { refusal.whatToDo = remedy }
        }
        if case .callEnded = error { refusal.details["callEnded"] = .bool(true) }
        if case .rejected(.itemsMissing(let missing)) = error {
            refusal.details["missing"] = .array(missing.map { .string($0.rawValue) })
        }
        if case .policy(let policy) = error {
            refusal.details["limit"] = .string(policy.reason)
            if case .chargeNotPermitted = policy { refusal.details["requiredScopes"] = [.string(PaymentScope.charge)] }
        }
        if case .sessionInProgress(let call, let payment?) = error {
            refusal.details["paymentSid"] = .string(payment.rawValue)
            refusal.extra["nextStep"] = MCPNextStep.cancel(callSID: call, paymentSID: payment).json
        } else if case .sessionInProgress(_, nil) = error, let session {
            // A start still waiting for Twilio: since when, and when another replica would settle
            // it if the one that started it died.
            refusal.details["phase"] = .string(session.phase.name)
            refusal.details["startedAt"] = .string(SessionJSON.timestamp(session.createdAt))
            refusal.details["settledBy"] = .string(SessionJSON.timestamp(coordinator.strandedAt(session)))
            refusal.extra["nextStep"] =
                MCPNextStep(session.nextStep, for: session, waitSeconds: maximumWaitSeconds).json
        } else if let session {
            refusal.details["paymentSid"] = session.paymentSID.map { .string($0.rawValue) }
            refusal.extra["nextStep"] =
                MCPNextStep(session.nextStep, for: session, waitSeconds: maximumWaitSeconds).json
        }
        return refusal
    }

    /// What an agent should do after `error`, in one sentence.
    static func whatToDo(_ error: FlowError, waitSeconds: Double) -> String {
        let wait = MCPNextStep.spoken(waitSeconds)
        switch error {
        case .rejected(.stillStarting):
            return "Wait for the session to start: call getPaymentStatus with waitSeconds \(wait)."
        case .rejected(.completing): return "Wait for the result: call getPaymentStatus with waitSeconds \(wait)."
        case .rejected(.cancelling):
            return "Wait for the cancellation to be confirmed: call getPaymentStatus with waitSeconds \(wait)."
        case .rejected(.finished):
            return "This session is over; if the caller still wants to pay, start a new one with startPaymentCapture."
        case .rejected(.itemInProgress):
            return "The caller is typing; call getPaymentStatus with waitSeconds \(wait) and act on its nextStep."
        case .rejected(.itemsMissing), .rejected(.outOfOrder), .rejected(.notApplicable):
            return "Follow nextStep: it names the item to capture next."
        case .invalidOptions, .invalidArgument: return "Correct the arguments as the message says and call again."
        case .conflict, .storeUnavailable: return "Call again in a moment with the same arguments; nothing was lost."
        case .callbackUnavailable: return "The server is not ready to take payments yet; call again in a moment."
        case .sessionGone: return "The session has expired; start a new one with startPaymentCapture."
        case .sessionInProgress(_, _?):
            return
                "Continue that session (nextStep of getPaymentStatus), or cancel it with cancelPaymentCapture and start again."
        case .sessionInProgress(_, nil):
            return "Wait for that session to start: call getPaymentStatus with the callSid and waitSeconds \(wait)."
        case .unknownSession:
            return
                "Use the paymentSid startPaymentCapture returned, or give only the callSid to use the call's current session."
        case .wrongCall: return "Use the call SID the payment session was started on."
        case .twilio:
            return
                "Tell the caller there is a problem taking the payment; try again once, then offer another way to pay."
        case .callEnded: return "The call is over: nothing more can be done on it. Nothing was charged."
        case .policy(.amountDiffers):
            return
                "Charge the amount due: call startPaymentCapture without chargeAmount (the amount due is used), and tell the caller that amount."
        case .policy(.chargeNotPermitted):
            return
                "Do not charge with these credentials: tokenize instead (omit chargeAmount) or hand the caller to a person."
        case .policy:
            return
                "Do not try another amount on your own: tell the caller this payment cannot be taken here and offer another way to pay."
        case .callBusy:
            return "Another agent is taking a payment on this call; wait for it to end, or hand the caller to a person."
        case .recordingsNotPaused:
            return
                "Do not take the card on this call now: tell the caller the payment cannot be taken securely at the moment, try once more, then offer another way to pay."
        }
    }

    /// Runs a flow request for a resource or prompt, where a refusal is a JSON-RPC error rather
    /// than a tool result: -32603 with the sentence, and `data` carrying `reason` and `retryable`
    /// (a store that is briefly away is worth retrying).
    static func rethrowingForMCP<T>(_ body: () async throws(FlowError) -> T) async throws(JSONRPCError) -> T {
        do {
            return try await body()
        } catch {
            throw JSONRPCError(
                code: JSONRPCError.internalErrorCode, message: error.description,
                data: .object(["reason": .string(reasonCode(error)), "retryable": .bool(error.isRetryable)]))
        }
    }

    /// A stable, machine-readable name for why a tool was refused.
    static func reasonCode(_ error: FlowError) -> String {
        switch error {
        case .rejected(let rejection):
            switch rejection {
            case .stillStarting: return "still-starting"
            case .completing: return "completing"
            case .cancelling: return "cancelling"
            case .finished: return "finished"
            case .notApplicable: return "not-applicable"
            case .outOfOrder: return "out-of-order"
            case .itemInProgress: return "item-in-progress"
            case .itemsMissing: return "items-missing"
            }
        case .invalidOptions: return "invalid-options"
        case .invalidArgument: return "invalid-argument"
        case .conflict: return "conflict"
        case .sessionGone: return "session-gone"
        case .sessionInProgress: return "session-in-progress"
        case .unknownSession: return "unknown-session"
        case .wrongCall: return "wrong-call"
        case .twilio(.api(let answer)) where answer.isThrottling: return "twilio-throttled"
        case .twilio: return "twilio-error"
        case .callbackUnavailable: return "callback-unavailable"
        case .callEnded: return "call-ended"
        case .storeUnavailable: return "store-unavailable"
        case .policy(let refusal): return refusal.reason
        case .callBusy: return "call-busy"
        case .recordingsNotPaused: return "recordings-not-paused"
        }
    }

    // MARK: Running a call

    /// One tool call: its arguments, its request, and its time budget (it answers by
    /// `deadline`, ``maximumWait`` after it began).
    struct Invocation {
        let call: ToolCall
        let arguments: ToolArguments
        let started: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant

        /// When a wait of the `waitSeconds` argument ends (never past the deadline); `nil` when
        /// no wait was asked for.
        var waitEnd: ContinuousClock.Instant? {
            guard let seconds = arguments.double("waitSeconds"), seconds > 0, seconds.isFinite else { return nil }
            // Shortened before it becomes a duration: no number a client sends can overflow it. A
            // wait of the whole budget ends a little before the deadline (a tenth, at most a
            // quarter of a second), so the answer is written in time on a busy machine too.
            let budget = (deadline - started).seconds
            let room = budget - min(0.25, budget / 10)
            return started + .milliseconds(Int64(min(seconds, room) * 1000))
        }

        /// Who is calling, as the payment flow judges access and spending.
        var actor: PaymentActor { call.context.paymentActor }

        /// The last progress sentence sent (a client may speak each one: it is not repeated).
        let lastProgress = ProgressMemo()

        /// Sends `notifications/progress` when the client asked for it: seconds spent so far out
        /// of the budget, with a sentence that may be spoken to the caller (it carries no digits)
        /// when it differs from the last one sent; the same sentence again goes without words.
        func progress(_ message: String, total: Duration) {
            let elapsed = min(ContinuousClock.now - started, total)
            call.context.reportProgress(
                elapsed.seconds, total: total.seconds, message: lastProgress.change(to: message))
        }
    }

    /// Runs a tool body against the coordinator within the call's time budget, turning every
    /// flow error and refusal into a refusal result.
    func invoke(
        _ call: ToolCall, _ body: @escaping @Sendable (PaymentCoordinator, Invocation) async throws -> ToolResult
    ) async -> ToolResult {
        let started = ContinuousClock.now
        let invocation = Invocation(
            call: call, arguments: ToolArguments(call.arguments), started: started, deadline: started + maximumWait)
        // The body bounds its own command and waits; this bounds everything else it awaits (the
        // store's reads), so no call outlives the budget by more than a margin.
        // Card data typed into any argument (a description, a parameter, a number) is refused
        // before anything runs, and never echoed: not to the model, not to the logs.
        if let field = Self.argumentHoldingCardData(call.arguments) {
            return failure(
                Refusal(
                    reason: "card-data-refused",
                    message:
                        "The argument \(field) looks like it holds a card number; it was not used, stored or logged.",
                    retryable: false,
                    whatToDo:
                        "Never pass card details to a tool: the caller types them on the keypad when a capture tool asks. Call again without them."
                ))
        }
        let answer = OneShot<ToolResult>()
        let work = Task { [self] in
            do {
                answer.fulfil(try await body(coordinator, invocation))
            } catch let error as FlowError {
                answer.fulfil(failure(refusal(error)))
            } catch let refusal as Refusal {
                answer.fulfil(failure(refusal))
            } catch {
                answer.fulfil(
                    failure(
                        Refusal(
                            reason: "tool-failed", message: String(describing: error), retryable: false,
                            whatToDo:
                                "Call again; if it fails again, tell the caller there is a problem taking the payment.")
                    ))
            }
        }
        let result = await withTaskCancellationHandler {
            await answer.value(until: invocation.deadline + Self.answerMargin)
        } onCancel: {
            work.cancel()
        }
        if let result { return result }
        // Cancelled: the engine sends no response; nothing to log.
        if Task.isCancelled {
            return ToolResult.refusal(reason: "cancelled", message: "The request was cancelled.", retryable: true)
        }
        return failure(
            Refusal(
                reason: "timeout",
                message:
                    "The server could not answer within \(MCPNextStep.spoken(maximumWaitSeconds)) seconds (its session store is slow); nothing was lost.",
                retryable: true,
                whatToDo: "Call getPaymentStatus with the callSid in a moment: it shows where the payment stands."))
    }

    /// The name of the first argument whose value (a string, or a number's digits, at any depth)
    /// holds a Luhn-valid run of 12–19 digits (``Masking/containsCardNumber(_:)``); `nil` when none.
    static func argumentHoldingCardData(_ arguments: [String: JSONValue]) -> String? {
        func holds(_ value: JSONValue) -> Bool {
            switch value {
            case .string(let text): return Masking.containsCardNumber(text)
            case .integer(let number): return Masking.containsCardNumber(String(number))
            case .double(let number):
                return number.isFinite && Masking.containsCardNumber(String(format: "%.0f", number))
            case .array(let items): return items.contains(where: holds)
            case .object(let members): return members.contains { Masking.containsCardNumber($0.key) || holds($0.value) }
            default: return false
            }
        }
        return arguments.keys.sorted().first { holds(arguments[$0]!) }
    }

    /// How far past its budget a call may run before it answers `timeout`: room for the final
    /// status read and the answer itself.
    /// With the default 3 s budget a call still answers within 4.25 s, under a voice client's 5 s.
    static let answerMargin: Duration = .milliseconds(1250)

    /// The call SID: the `callSid` argument, else the HTTP request's call header
    /// (``callSIDHeader``). Both given and different: refused.
    func callSID(_ invocation: Invocation) throws -> CallSID? {
        let argument = try invocation.arguments.optional("callSid", CallSID.init)
        let raw =
            invocation.call.context.transportHeaders[callSIDHeader.lowercased()]?.trimmingCharacters(in: .whitespaces)
            ?? ""
        // An empty header (a platform variable that resolved to nothing) is no header.
        guard !raw.isEmpty else { return argument }
        guard let header = CallSID(raw) else {
            // A malformed header cannot name the call; a callSid argument still can.
            if let argument {
                logger.warning(
                    "ignoring a malformed call header; the callSid argument names the call",
                    metadata: ["header": "\(callSIDHeader)"])
                return argument
            }
            throw Refusal(
                reason: "invalid-argument",
                message: "The \(callSIDHeader) header is not a Twilio Call SID (CA followed by 32 hexadecimal digits).",
                retryable: false, whatToDo: "Pass callSid as an argument, or fix the header the voice platform sends.")
        }
        if let argument, argument != header {
            throw Refusal(
                reason: "call-sid-mismatch",
                message:
                    "The callSid argument \(argument) is not the call this request belongs to (\(callSIDHeader): \(header)).",
                retryable: false, whatToDo: "Omit callSid (the header supplies it), or pass \(header).",
                details: ["headerCallSid": .string(header.rawValue)])
        }
        return header
    }

    /// The session a call names: by `paymentSid`, else the call's unfinished session, else its
    /// latest. Checks that the session belongs to the call when both are given.
    func session(_ invocation: Invocation, _ coordinator: PaymentCoordinator) async throws -> PaymentSession {
        let callSID = try callSID(invocation)
        let actor = invocation.actor
        if let sid = try invocation.arguments.optional("paymentSid", PaymentSID.init) {
            // Another principal's session is unknown to this one, exactly as a SID nobody knows.
            guard let session = try await coordinator.latestSession(sid), actor.mayAccess(session) else {
                throw FlowError.unknownSession(sid)
            }
            if let callSID, callSID != session.callSID { throw FlowError.wrongCall(paymentSID: sid, callSID: callSID) }
            return session
        }
        guard let callSID else {
            throw Refusal(
                reason: "invalid-argument",
                message: "Name the payment session: paymentSid, or callSid to use the call's current session.",
                retryable: false, whatToDo: "Pass the paymentSid that startPaymentCapture returned, or the callSid.")
        }
        let sessions = try await coordinator.sessions(onCall: callSID).filter(actor.mayAccess)
        guard
            let session = sessions.first(where: { !$0.phase.isFinished })
                ?? sessions.max(by: { $0.updatedAt < $1.updatedAt })
        else {
            throw Refusal(
                reason: "no-session", message: "No payment session is known on call \(callSID).", retryable: false,
                whatToDo: "Start one with startPaymentCapture.",
                extra: ["nextStep": MCPNextStep.start(callSID: callSID).json])
        }
        return session
    }

    /// Runs `command` in the service's group (``submit(_:)``), so that this request's cancellation (the caller
    /// talked over the agent, a closed stream) or its deadline never cuts a Twilio request
    /// short: the command finishes, or is retried with its stored key, and stores its outcome.
    /// Returns the outcome, or `nil` when the deadline (or a cancellation) came first.
    func perform(
        _ command: PaymentCommand, _ coordinator: PaymentCoordinator, _ invocation: Invocation,
        saying progress: String
    ) async throws -> CommandOutcome? {
        let outcome = OneShot<Result<CommandOutcome, FlowError>>()
        let actor = invocation.actor
        submit {
            do throws(FlowError) {
                outcome.fulfil(.success(try await coordinator.perform(command, as: actor)))
            } catch {
                outcome.fulfil(.failure(error))
            }
        }
        while ContinuousClock.now < invocation.deadline, !Task.isCancelled {
            if let result = await outcome.value(until: min(invocation.deadline, .now + progressInterval)) {
                return try result.get()
            }
            invocation.progress(progress, total: maximumWait)
        }
        return try await outcome.value(until: .now)?.get()
    }

    /// The command a session tool makes of the session its call names (``session(_:_:)``): run
    /// by ``perform(_:_:_:saying:)``, a flow error refused with that session's next step.
    func command(
        _ invocation: Invocation, _ coordinator: PaymentCoordinator, saying progress: String,
        _ make: (PaymentSID, CallSID) -> PaymentCommand
    ) async throws -> (outcome: CommandOutcome?, sid: PaymentSID, callSID: CallSID) {
        let session = try await session(invocation, coordinator)
        guard let sid = session.paymentSID else { throw FlowError.rejected(.stillStarting) }
        do {
            return (
                try await perform(make(sid, session.callSID), coordinator, invocation, saying: progress), sid,
                session.callSID
            )
        } catch let error as FlowError {
            throw refusal(error, session: try? await coordinator.latestSession(sid))
        }
    }

    /// Waits while `session` is not `done`, until `end`, reporting progress; returns the session
    /// as it then stands and how the wait ended.
    func wait(
        on session: PaymentSession, _ coordinator: PaymentCoordinator, _ invocation: Invocation,
        until end: ContinuousClock.Instant,
        saying progress: (PaymentSession) -> String, done: (PaymentSession) -> Bool
    ) async throws -> (PaymentSession, JSONValue) {
        var current = session
        var outcome = "time-up"
        // Progress at most once an interval, however fast the caller types: a client may speak it.
        var lastProgress = invocation.started
        while true {
            if done(current) {
                outcome = current.version == session.version ? "done" : "changed"
                break
            }
            if Task.isCancelled {
                outcome = "cancelled"
                break
            }
            let now = ContinuousClock.now
            if now >= end { break }
            guard let sid = current.paymentSID else {
                // Still starting: its SID arrives with the next change of the call's sessions.
                try? await Task.sleep(for: min(end - now, .milliseconds(100)))
                current =
                    try await coordinator.sessions(onCall: current.callSID).first { $0.id == current.id } ?? current
                continue
            }
            if let changed = try await coordinator.waitForChange(
                sid, afterVersion: current.version, timeout: min(end - now, progressInterval)),
                changed.version >= current.version
            {
                current = changed
            }
            if !done(current), ContinuousClock.now - lastProgress >= progressInterval {
                lastProgress = .now
                invocation.progress(progress(current), total: maximumWait)
            }
        }
        let waited = (ContinuousClock.now - invocation.started).seconds
        return (current, ["seconds": .double((waited * 10).rounded() / 10), "outcome": .string(outcome)])
    }

    /// The answer to a command: its outcome's session after an optional wait, or, when Twilio
    /// had not answered by the deadline, the session as it stands, marked `pending`.
    func answer(
        _ outcome: CommandOutcome?, _ coordinator: PaymentCoordinator, _ invocation: Invocation, sid: PaymentSID?,
        callSID: CallSID,
        said: String?, waitingFor waitingSentence: (PaymentSession) -> String, done: (PaymentSession) -> Bool,
        afterWait: (PaymentSession) -> String? = { _ in nil }
    ) async throws -> ToolResult {
        guard let outcome else {
            var current: PaymentSession?
            if let sid { current = try await coordinator.latestSession(sid) }
            if current == nil {
                current = try await coordinator.sessions(onCall: callSID).first {
                    !$0.phase.isFinished && invocation.actor.mayAccess($0)
                }
            }
            // Not even stored yet (the store is slow): the start goes on; the call's status follows.
            guard let current else {
                throw Refusal(
                    reason: "still-starting",
                    message: "The payment session is still being started; the request goes on.", retryable: true,
                    whatToDo:
                        "Call getPaymentStatus with the callSid and waitSeconds \(MCPNextStep.spoken(maximumWaitSeconds)) to see it."
                )
            }
            return result(
                current,
                said: "Twilio has not answered yet; the request goes on and its outcome will show in the status.",
                flags: ["pending": true])
        }
        var session = outcome.session
        var flags: [String: JSONValue] = outcome.repeated ? ["repeated": true] : [:]
        var said = said
        if let end = invocation.waitEnd {
            let (waited, how) = try await wait(
                on: session, coordinator, invocation, until: end, saying: waitingSentence, done: done)
            // What the command started has come to pass: say where it stands now, not what was asked.
            if waited.version != session.version, done(waited) { said = afterWait(waited) }
            session = waited
            flags["waited"] = how
        }
        return result(session, said: said, flags: flags)
    }

    // MARK: The tools

    /// The options of `startPaymentCapture`, from its arguments and the configured defaults.
    func options(from arguments: ToolArguments) throws(FlowError) -> PaymentSessionOptions {
        var options = PaymentSessionOptions()
        options.chargeAmount = try arguments.amount("chargeAmount")
        options.currency = arguments.string("currency")?.uppercased() ?? defaults.currency
        options.description = arguments.string("description")
        options.paymentMethod = try arguments.optional("paymentMethod", PaymentMethod.init(rawValue:))
        options.tokenType = try arguments.optional("tokenType", TokenType.init(rawValue:)) ?? defaults.tokenType
        options.paymentConnector = arguments.string("paymentConnector") ?? defaults.paymentConnector
        let isCard = (options.paymentMethod ?? .creditCard) == .creditCard
        options.securityCode = arguments.bool("securityCode") ?? (isCard ? defaults.securityCode : nil)
        options.postalCode = arguments.bool("postalCode") ?? (isCard ? defaults.postalCode : nil)
        options.minPostalCodeLength = arguments.int("minPostalCodeLength")
        options.validCardTypes = try arguments.list("validCardTypes", of: "card type", CardType.init(rawValue:))
        options.timeout = arguments.int("timeout")
        // A card payment has no bank account type: a strict model's filler is ignored there.
        options.bankAccountType =
            isCard ? nil : try arguments.optional("bankAccountType", BankAccountType.init(rawValue:))
        options.confirmation = arguments.bool("confirmation")
        options.requireMatchingInputs = try arguments.list(
            "requireMatchingInputs", of: "item", MatchableInput.init(rawValue:))
        options.input = arguments.string("input")
        options.parameters = try arguments.connectorParameters("parameter")
        if options.paymentMethod == .achDebit, options.tokenType == .paymentMethod, arguments.values["tokenType"] == nil
        {
            options.tokenType = nil
        }
        return options
    }

    static func enumSchema<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ description: String) -> JSONValue
    where T.RawValue == String {
        [
            "type": "string", "enum": .array(T.allCases.map { .string($0.rawValue) }),
            "description": .string(description),
        ]
    }

    func startTool() -> Tool {
        let properties: [String: JSONValue] = [
            "callSid": Self.callSIDSchema,
            "chargeAmount": [
                "type": ["number", "string"], "pattern": "^[0-9]+(\\.[0-9]+)?$", "minimum": 0,
                "description":
                    "Amount to charge, e.g. 9.99 or \"9.99\" (a string is kept exactly); omit, null or 0 to tokenize only.",
            ],
            "currency": [
                "type": "string", "pattern": "^[A-Za-z]{3}$",
                "description": "ISO 4217 code, e.g. USD (default from CURRENCY).",
            ],
            "description": ["type": "string", "maxLength": 255, "description": "Passed to the payment connector."],
            "reference": [
                "type": "string", "minLength": 1, "maxLength": 256,
                "description":
                    "Your own name for what this payment belongs to (a conversation id); echoed in the status and in every payment event sent to your webhook. Never card data.",
            ],
            "paymentMethod": Self.enumSchema(PaymentMethod.self, "credit-card (default) or ach-debit."),
            "tokenType": Self.enumSchema(
                TokenType.self, "Token kind (default from TOKEN_TYPE; payment-method is Stripe only)."),
            "paymentConnector": [
                "type": "string", "minLength": 1,
                "description":
                    "The Pay Connector's unique name (default from PAYMENT_CONNECTOR, else Twilio's Default).",
            ],
            "securityCode": [
                "type": "boolean", "description": "Ask for the security code (default from SECURITY_CODE, true).",
            ],
            "postalCode": [
                "type": "boolean", "description": "Ask for the billing postal code (default from POSTAL_CODE, false).",
            ],
            "minPostalCodeLength": [
                "type": "integer", "minimum": 1, "description": "Fewest characters a postal code may have.",
            ],
            "validCardTypes": [
                "type": "array", "items": Self.enumSchema(CardType.self, "A card brand."), "minItems": 1,
                "description": "Card brands accepted (Twilio's default: visa, mastercard, amex).",
            ],
            "timeout": [
                "type": "integer", "minimum": 1, "maximum": 600,
                "description": "Seconds of keypad silence allowed (Twilio's default 5).",
            ],
            "bankAccountType": Self.enumSchema(
                BankAccountType.self, "ACH only: the kind of account (ignored for a card payment)."),
            "confirmation": [
                "type": "boolean", "description": "Have the caller confirm the last four digits before submitting.",
            ],
            "requireMatchingInputs": [
                "type": "array", "items": Self.enumSchema(MatchableInput.self, "An item the caller types twice."),
                "description":
                    "Items the caller types twice; each second entry is captured with its capture tool's captureType.",
            ],
            "input": [
                "type": "string", "enum": ["dtmf"],
                "description": "How the caller enters details (Twilio accepts only dtmf).",
            ],
            "parameter": [
                "type": "array",
                "items": [
                    "type": "object",
                    "properties": [
                        "name": ["type": "string", "minLength": 1], "value": ["type": ["string", "number", "boolean"]],
                    ],
                    "required": ["name", "value"], "additionalProperties": false,
                ],
                "description":
                    "Connector-specific parameters (Twilio's Parameter) as name/value pairs, e.g. [{\"name\": \"AVSName\", \"value\": \"Ada Lovelace\"}] for some ACH connectors.",
            ],
        ]
        return Tool(
            name: FlowTool.startPaymentCapture.rawValue, title: "Start a payment",
            description:
                "Starts a secure payment session on a live call. Without chargeAmount (or with 0) the card (or bank account) is tokenized for later use; with it, the amount is charged at completion. Every option of Twilio's Payments API is available. Called again on the same call with the same options, it returns that call's session (resumed) and sends nothing. Returns the session status with a message and the next step.",
            inputSchema: [
                "type": "object", "properties": .object(properties.mapValues(Self.nullable)),
                "additionalProperties": false,
            ],
            outputSchema: SessionJSON.toolResultSchema,
            annotations: ToolAnnotations(
                readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true),
            requiredScopes: [PaymentScope.capture]
        ) { [self] call in
            await invoke(call) { [self] coordinator, invocation in
                guard let callSID = try callSID(invocation) else {
                    throw Refusal(
                        reason: "invalid-argument",
                        message: "callSid is required: the Twilio Call SID of the caller's call.",
                        retryable: false,
                        whatToDo:
                            "Pass callSid (CA followed by 32 hexadecimal digits), or have the voice platform send the \(callSIDHeader) header."
                    )
                }
                let options = try options(from: invocation.arguments)
                let outcome: CommandOutcome?
                do {
                    outcome = try await perform(
                        .start(
                            callSID: callSID, options: options, reference: invocation.arguments.string("reference")),
                        coordinator, invocation,
                        saying: "Starting a secure payment session.")
                } catch FlowError.sessionInProgress(let call, nil) {
                    // Answered with the starting session's state, not a bare refusal.
                    let starting = try? await coordinator.sessions(onCall: call).first { !$0.phase.isFinished }
                    throw refusal(.sessionInProgress(callSID: call, paymentSID: nil), session: starting)
                }
                guard let outcome else {
                    return try await answer(
                        nil, coordinator, invocation, sid: nil, callSID: callSID, said: nil, waitingFor: { _ in "" },
                        done: { _ in true })
                }
                let sid = outcome.session.paymentSID?.rawValue ?? "(starting)"
                if outcome.repeated {
                    return result(
                        outcome.session,
                        said:
                            "Payment session \(sid) was already running on call \(callSID) with these options; resumed it.",
                        flags: ["resumed": true])
                }
                return result(outcome.session, said: "Payment session \(sid) started on call \(callSID).")
            }
        }
    }

    func captureTool(_ item: PaymentItem) -> Tool {
        let tool = FlowTool.capture(item)
        var properties: [String: JSONValue] = ["callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema]
        let kinds = [item] + (item.matcher.map { [$0] } ?? [])
        properties["captureType"] = Self.nullable([
            "type": "string", "enum": .array(kinds.map { .string($0.rawValue) }),
            "description": .string(
                item.matcher.map {
                    "\(item.rawValue) (the default), or \($0.rawValue) for the second entry when the session requires matching inputs."
                }
                    ?? "Optional; kept for compatibility. Must be \(item.rawValue) if given."),
        ])
        properties["restart"] = [
            "type": ["boolean", "null"],
            "description": .string(
                "Start this entry over even though the caller is typing it or it is already captured (the caller made a mistake). Without it, a repeated call returns the status and sends nothing."
            ),
        ]
        properties["waitSeconds"] = waitSecondsSchema
        return Tool(
            name: tool.rawValue, title: "Capture the \(item.spokenName)",
            description:
                "Asks Twilio to collect the \(item.spokenName) from the caller's keypad. Tell the caller what to type first; progress arrives masked in the status. With waitSeconds, also waits for the entry to finish. Called again while the caller is typing it, returns the status and sends nothing; call it again after an error to re-capture, or with restart to start over.",
            inputSchema: ["type": "object", "properties": .object(properties), "additionalProperties": false],
            outputSchema: SessionJSON.toolResultSchema,
            // Not idempotent with restart (each one starts the entry over); without it, a repeat is harmless.
            annotations: ToolAnnotations(
                readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true),
            requiredScopes: [PaymentScope.capture]
        ) { [self] call in
            await invoke(call) { [self] coordinator, invocation in
                let arguments = invocation.arguments
                let target = try arguments.optional("captureType", PaymentItem.init(rawValue:)) ?? item
                guard target.base == item else {
                    throw FlowError.invalidArgument(
                        "captureType \(target.rawValue) is not captured by \(tool.rawValue)")
                }
                let restart = arguments.bool("restart") ?? false
                let (outcome, sid, callSID) = try await command(
                    invocation, coordinator, saying: "Asking the caller's keypad for the \(target.spokenName)."
                ) {
                    .capture(target, paymentSID: $0, callSID: $1, restart: restart)
                }
                let said: String
                if outcome?.repeated == true {
                    said =
                        outcome?.session.state(target).isCaptured == true
                        ? "The \(target.spokenName) is already captured; nothing was sent (pass restart to capture it again)."
                        : "The caller is already typing the \(target.spokenName); nothing was sent (if they are not, call again with restart)."
                } else {
                    said = "Capturing the \(target.spokenName)."
                }
                return try await answer(
                    outcome, coordinator, invocation, sid: sid, callSID: callSID, said: said,
                    waitingFor: { _ in "Waiting for the caller to finish entering the \(target.spokenName)." },
                    done: { $0.phase.isFinished || !$0.state(target).isInProgress },
                    afterWait: { $0.state(target).isCaptured ? "The \(target.spokenName) is captured." : nil })
            }
        }
    }

    func completeTool() -> Tool {
        Tool(
            name: FlowTool.completePaymentCapture.rawValue, title: "Complete the payment",
            description:
                "Submits the captured details: charges the amount, or saves the card or account as a token. Refused, naming what is missing, until every item Twilio still requires is captured. With waitSeconds, also waits for the result. Called again while completing or after it went through, returns the outcome and sends nothing.",
            inputSchema: [
                "type": "object",
                "properties": [
                    "callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema,
                    "waitSeconds": waitSecondsSchema,
                ],
                "additionalProperties": false,
            ],
            outputSchema: SessionJSON.toolResultSchema,
            annotations: ToolAnnotations(
                readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true),
            requiredScopes: [PaymentScope.capture]
        ) { [self] call in
            await invoke(call) { [self] coordinator, invocation in
                let (outcome, sid, callSID) = try await command(
                    invocation, coordinator, saying: "Submitting the payment."
                ) {
                    .complete(paymentSID: $0, callSID: $1)
                }
                return try await answer(
                    outcome, coordinator, invocation, sid: sid, callSID: callSID,
                    said: outcome?.repeated == true
                        ? "The payment was already submitted; nothing was sent again." : "Submitting the payment.",
                    waitingFor: { _ in "Processing the payment." },
                    done: { if case .completing = $0.phase { false } else { true } })
            }
        }
    }

    func cancelTool() -> Tool {
        Tool(
            name: FlowTool.cancelPaymentCapture.rawValue, title: "Cancel the payment session",
            description:
                "Cancels the payment session at any point before it ends. Final: to try again, start a new session. Called again while cancelling or once cancelled, returns the status and sends nothing.",
            inputSchema: [
                "type": "object", "properties": ["callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema],
                "additionalProperties": false,
            ],
            outputSchema: SessionJSON.toolResultSchema,
            annotations: ToolAnnotations(
                readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true),
            requiredScopes: [PaymentScope.capture]
        ) { [self] call in
            await invoke(call) { [self] coordinator, invocation in
                let (outcome, sid, callSID) = try await command(
                    invocation, coordinator, saying: "Cancelling the payment."
                ) {
                    .cancel(paymentSID: $0, callSID: $1)
                }
                return try await answer(
                    outcome, coordinator, invocation, sid: sid, callSID: callSID,
                    said: outcome?.repeated == true
                        ? "The payment session was already being cancelled; nothing was sent again." : nil,
                    waitingFor: { _ in "Cancelling the payment." }, done: { _ in true })
            }
        }
    }

    func statusTool() -> Tool {
        Tool(
            name: FlowTool.getPaymentStatus.rawValue, title: "Get the payment status",
            description:
                "Returns the session's masked status, a message and the next step. With waitSeconds, waits up to that long and returns as soon as the session changes (for clients that cannot subscribe to the status resource).",
            inputSchema: [
                "type": "object",
                "properties": [
                    "callSid": Self.callSIDSchema, "paymentSid": Self.paymentSIDSchema,
                    "waitSeconds": waitSecondsSchema,
                    "afterVersion": [
                        "type": ["integer", "null"], "minimum": 0,
                        "description": "Wait for a version newer than this (default: the current one).",
                    ],
                    "waitFor": [
                        "type": ["string", "null"], "enum": ["change", "next-step", .null],
                        "description":
                            "change (the default): return at the session's next change, such as each digit the caller types. next-step: return only once there is something for the agent to do (the entry finished or failed, the payment's result came), so the agent stays quiet while the caller types.",
                    ],
                ], "additionalProperties": false,
            ],
            outputSchema: SessionJSON.toolResultSchema,
            annotations: ToolAnnotations(
                readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false),
            requiredScopes: [PaymentScope.read],
            // A plain read is answered on the receiving thread, without a task.
            immediate: { [self] call in plainStatus(call) }
        ) { [self] call in
            await invoke(call) { [self] coordinator, invocation in
                // The published snapshot answers without an actor hop; the store when it has none.
                var session = try await session(invocation, coordinator)
                var flags: [String: JSONValue] = [:]
                if let end = invocation.waitEnd {
                    let after = invocation.arguments.int("afterVersion").map(UInt64.init) ?? session.version
                    let untilNextStep = invocation.arguments.string("waitFor") == "next-step"
                    let (waited, how) = try await wait(
                        on: session, coordinator, invocation, until: end, saying: { Self.waitingSentence($0) }
                    ) {
                        $0.phase.isFinished || (untilNextStep ? !$0.nextStep.waitForCaller : $0.version > after)
                    }
                    session = waited
                    flags["waited"] = how
                }
                var said: String?
                if case .waitForCaller(let item) = session.nextStep.action, flags["waited"] != nil {
                    said = "The caller is still entering the \(item.spokenName)."
                }
                return result(session, said: said, flags: flags, level: .debug)
            }
        }
    }

    /// The answer to a plain status read (a `paymentSid`, nothing else: no wait, no call named by
    /// an argument or a header) when the published snapshot has the session and the caller may
    /// see it: the same result ``invoke(_:_:)``'s body gives, answered in place, without the task,
    /// the deadline timer and the thread hops a call that may wait or read the store needs (a
    /// profile of status round trips spent 38 % of its samples switching threads). `nil`
    /// otherwise: then the full path answers, with its refusals.
    func plainStatus(_ call: ToolCall) -> ToolResult? {
        let arguments = call.arguments.filter { !$0.value.isNull }
        guard arguments.count == 1, let text = arguments["paymentSid"]?.stringValue, let sid = PaymentSID(text),
            (call.context.transportHeaders[callSIDHeader.lowercased()] ?? "").allSatisfy(\.isWhitespace),
            let session = coordinator.publishedSession(sid), call.context.paymentActor.mayAccess(session)
        else { return nil }
        return result(session, level: .debug)
    }

    /// What the server is waiting for, as a sentence that may be spoken (no digits).
    static func waitingSentence(_ session: PaymentSession) -> String {
        switch session.nextStep.action {
        case .waitForCaller(let item): return "Waiting for the caller to finish entering the \(item.spokenName)."
        case .waitForStart: return "Starting the secure payment session."
        case .waitForResult: return "Processing the payment."
        case .waitForCancellation: return "Cancelling the payment."
        default: return "Waiting for the payment status to change."
        }
    }
}

/// The last progress sentence of one call.
final class ProgressMemo: Sendable {
    private let last = Mutex<String?>(nil)

    /// `message` if it differs from the last one (which it becomes), else `nil`.
    func change(to message: String) -> String? {
        last.withLock { last in
            guard last != message else { return nil }
            last = message
            return message
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension MCPNextStep {
    /// Cancel `paymentSID` (the way out when a different session is wanted on the call).
    static func cancel(callSID: CallSID, paymentSID: PaymentSID) -> MCPNextStep {
        var step = MCPNextStep(
            NextStep(
                .startOver, topic: nil,
                instruction:
                    "A payment session is already running on this call; to start a different one, cancel it first."))
        step.tool = .cancelPaymentCapture
        step.instruction =
            "A payment session (\(paymentSID)) is already running on this call; continue it, or to start a different one, call cancelPaymentCapture first."
        step.arguments = ["callSid": .string(callSID.rawValue), "paymentSid": .string(paymentSID.rawValue)]
        return step
    }

    /// Start a session on `callSID`.
    static func start(callSID: CallSID) -> MCPNextStep {
        var step = MCPNextStep(
            NextStep(.startOver, topic: .startCapture, instruction: "No payment session is running on this call."))
        step.arguments = ["callSid": .string(callSID.rawValue)]
        return step
    }
}
