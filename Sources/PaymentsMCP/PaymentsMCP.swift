public import MCPCore
public import PaymentFlow
import TwilioPayments
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
import Tracing

/// Binds the payment flow to an MCP server: the seed's tools (`startPaymentCapture`,
/// `captureCardNumber`, `captureSecurityCode`, `captureExpirationDate`,
/// `completePaymentCapture`) and the new ones (`capturePostalCode`,
/// `captureBankRoutingNumber`, `captureBankAccountNumber`, `cancelPaymentCapture`,
/// `getPaymentStatus`); the status resource `payment://{callSid}/{paymentSid}/status` with a
/// notification for every change; the guidance prompts; completions of active SIDs.
///
/// It is a swift-service-lifecycle `Service`: ``run()`` forwards every session change as
/// resource notifications and runs the commands the tools start, as child tasks (a command
/// outlives the request that started it, never the service). Run it in the host's group after
/// the payments system and before the MCP transport, so that at shutdown the transport stops
/// first and the commands in flight finish before the system stops.
public final class PaymentsMCP: Service, CustomStringConvertible, Sendable {
    /// Its name in a service group and in logs.
    public var description: String { "mcp tools" }
    public let server: MCPServer
    /// The payment flow the tools drive (a ``PaymentsService`` system's, or a host's own).
    public let coordinator: PaymentCoordinator
    public let defaults: PaymentDefaults
    /// What every text the agent sees passes through (tool results, the status resource,
    /// prompts), as the logs do: Twilio's messages may echo what they were sent.
    public let redactor: Redactor

    /// Where the tools log their results and refusals (the host's choice, as swift-log has it).
    public let logger: Logger

    /// The longest any tool call takes (its Twilio request and its wait included; a Twilio
    /// request still running then goes on in the background, and the call answers `pending`).
    /// Voice frameworks time tool calls out after about 5 s, so the default is 3 s
    /// (`AGENT_PAYMENTS_MAX_WAIT_SECONDS`).
    public let maximumWait: Duration
    /// ``maximumWait`` in seconds: what `waitSeconds` is shortened to, and what next steps suggest.
    public var maximumWaitSeconds: Double { maximumWait.seconds }
    /// The default of ``maximumWait``, in seconds.
    public static let defaultMaximumWaitSeconds: Double = 3
    /// The HTTP header that supplies `callSid` to a tool call that omits it: voice platforms know
    /// the call and send it, so the model need not type it (the transport must forward it).
    public let callSIDHeader: String
    /// How often a waiting call sends progress (when the client asked for it).
    let progressInterval: Duration

    /// Each session version's status, built once for every tool result and resource read.
    let rendered = RenderedStatuses()
    /// The commands tools hand to ``run()``.
    let commands = AsyncStream<@Sendable () async -> Void>.makeStream()
    /// Whether ``run()`` takes commands now (before it starts and after it stops, a tool runs
    /// its command itself).
    let running = Mutex(false)

    public init(
        server: MCPServer, coordinator: PaymentCoordinator, defaults: PaymentDefaults = PaymentDefaults(),
        redactor: Redactor = Redactor(secrets: []),
        logger: Logger = Logger(label: "agent-payments.tools"),
        maximumWait: Duration = .milliseconds(Int64(defaultMaximumWaitSeconds * 1000)),
        callSIDHeader: String = "X-Twilio-Call-Sid", progressInterval: Duration = .seconds(1)
    ) {
        self.maximumWait = max(maximumWait, .milliseconds(100))
        self.callSIDHeader = callSIDHeader
        self.progressInterval = progressInterval
        self.logger = logger
        self.server = server
        self.coordinator = coordinator
        self.defaults = defaults
        self.redactor = redactor
    }

    /// The MCP server of agent-payments, with its identity and instructions.
    /// Argument errors never quote the values they refuse: a card number typed into the wrong field
    /// must not come back.
    public static func makeServer(version: String, options: MCPServer.Options = MCPServer.Options()) -> MCPServer {
        var options = options
        options.echoesArgumentValues = false
        // ``install()`` registers all four; a host may answer the handshake before it has
        // (agent-payments over stdio does, holding the rest until then).
        options.declaredFeatures = Set(MCPServer.Feature.allCases)
        return MCPServer(
            info: Implementation(
                name: "agent-payments", title: "Agent Payments (Twilio)", version: version,
                description: "Take card or bank payments on a live Twilio call without ever seeing the card."),
            instructions: """
                Takes a card or bank (ACH) payment on a live Twilio voice call while you never see the card: the caller types \
                on the keypad, Twilio captures and tokenizes the digits, and you only ever see masked values. Start with the \
                StartCapture prompt, then startPaymentCapture with the call SID. Every tool result carries the session's \
                status, a message and a nextStep naming the tool to call next with its complete arguments. Watch \
                progress through the resource payment://{callSid}/{paymentSid}/status (subscribe for updates) or \
                getPaymentStatus with waitSeconds. Never ask the caller to say card digits aloud, and never read digits back.
                """,
            options: options
        )
    }

    /// Registers the tools, the resource template, the prompts and the completion provider,
    /// and starts forwarding session changes as resource notifications.
    public func install() {
        for tool in tools() { server.register(tool) }
        server.register(statusTemplate())
        for prompt in GuidanceTopic.allCases { server.register(makePrompt(prompt)) }
        server.setCompletionProvider { [self] request, context in await complete(request, principal: context.principal)
        }
    }

    /// Forwards changes and runs commands until a graceful shutdown (or cancellation); then
    /// takes no more commands, waits for those in flight, and stops forwarding.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.forwardChanges() }
            await withDiscardingTaskGroup { commandGroup in
                running.withLock { $0 = true }
                await withGracefulShutdownHandler {
                    for await command in commands.stream { commandGroup.addTask { await command() } }
                } onGracefulShutdown: { [commands] in
                    commands.continuation.finish()
                }
                running.withLock { $0 = false }
            }
            group.cancelAll()
        }
    }

    /// Whether ``run()`` is taking commands now.
    public var takesCommands: Bool { running.withLock { $0 } }

    /// Hands `command` to ``run()``'s group, or, when the service does not run, runs it in a task
    /// of its own (a host that never ran the service still gets its commands done).
    func submit(_ submitted: @escaping @Sendable () async -> Void) {
        // The command runs on the dispatcher's task: it carries the tool call's trace with it.
        let context = ServiceContext.current
        let command: @Sendable () async -> Void = { await ServiceContext.withValue(context) { await submitted() } }
        let taken = running.withLock { running -> Bool in
            guard running else { return false }
            if case .enqueued = commands.continuation.yield(command) { return true }
            return false
        }
        if !taken { Task(operation: command) }
    }

    /// Every session change as `notifications/resources/updated` (and `list_changed` when the
    /// list changes), to those who may see the session.
    func forwardChanges() async {
        var known: Set<PaymentSID> = []
        for await session in await coordinator.changes() {
            guard let sid = session.paymentSID else { continue }
            // Only to those who may see it: a subscription to another's payment hears nothing,
            // and its list does not change for them.
            let visible: @Sendable (Principal) -> Bool = { principal in
                principal.has(PaymentScope.read) && principal.paymentActor.mayAccess(session)
            }
            let started = DefaultTracerClock.now
            var sent = server.notifyResourceUpdated(
                uri: SessionJSON.uri(callSID: session.callSID, paymentSID: sid), visibleTo: visible)
            if known.insert(sid).inserted || session.phase.isFinished {
                sent += server.notifyResourcesListChanged(visibleTo: visible)
            }
            // A span in the payment's trace when this process started it (else one of its own),
            // when anyone was told: the caller's tool call, then each notification its payment's
            // changes sent. (A change no one hears is no span: it costs an export for nothing.)
            if sent > 0 {
                let span = startSpan(
                    "notifications/resources/updated",
                    context: coordinator.traces.context(ofCall: session.callSID.rawValue) ?? .topLevel,
                    ofKind: .producer, at: started)
                span.attributes["mcp.method.name"] = "notifications/resources/updated"
                span.attributes["payment.phase"] = session.phase.name
                span.attributes["mcp.notifications.sent"] = sent
                span.end()
            }
            if session.phase.isFinished { known.remove(sid) }
        }
    }
}
