public import MCPCore
public import PaymentFlow
import TwilioPayments
import Foundation
public import Logging

/// Binds the payment flow to an MCP server: the seed's tools (`startPaymentCapture`,
/// `captureCardNumber`, `captureSecurityCode`, `captureExpirationDate`,
/// `completePaymentCapture`) and the new ones (`capturePostalCode`,
/// `captureBankRoutingNumber`, `captureBankAccountNumber`, `cancelPaymentCapture`,
/// `getPaymentStatus`); the status resource `payment://{callSid}/{paymentSid}/status` with a
/// notification for every change; the guidance prompts; completions of active SIDs.
public final class PaymentsMCP: Sendable {
    public let server: MCPServer
    /// Where the coordinator comes from (the coordinator itself, or a system still starting).
    public let flow: any PaymentCoordinatorSource
    public let defaults: PaymentDefaults
    /// How long a tool waits for the coordinator before answering that the server is starting.
    public let readinessTimeout: Duration
    /// What every text the agent sees passes through (tool results, the status resource,
    /// prompts), as the logs do: Twilio's messages may echo what they were sent.
    public let redactor: Redactor

    /// Where the tools log their results and refusals (the host's choice, as swift-log has it).
    public let logger: Logger

    /// Each session version's status, built once for every tool result and resource read.
    let rendered = RenderedStatuses()

    public init(server: MCPServer, flow: any PaymentCoordinatorSource, defaults: PaymentDefaults = PaymentDefaults(),
                readinessTimeout: Duration = .seconds(20), redactor: Redactor = Redactor(secrets: []),
                logger: Logger = Logger(label: "agent-payments.tools")) {
        self.logger = logger
        self.server = server
        self.flow = flow
        self.defaults = defaults
        self.readinessTimeout = readinessTimeout
        self.redactor = redactor
    }

    /// The MCP server of agent-payments, with its identity and instructions.
    public static func makeServer(version: String, options: MCPServer.Options = MCPServer.Options()) -> MCPServer {
        MCPServer(
            info: Implementation(name: "agent-payments", title: "Agent Payments (Twilio)", version: version,
                                 description: "Take card or bank payments on a live Twilio call without ever seeing the card."),
            instructions: """
                Takes a card or bank (ACH) payment on a live Twilio voice call while you never see the card: the caller types \
                on the keypad, Twilio captures and tokenizes the digits, and you only ever see masked values. Start with the \
                StartCapture prompt, then startPaymentCapture with the call SID. Every tool result carries the session's \
                status and a nextStep telling you which tool to call and which prompt applies. Watch progress through the \
                resource payment://{callSid}/{paymentSid}/status (subscribe for updates) or getPaymentStatus with \
                waitSeconds. Never ask the caller to say card digits aloud.
                """,
            options: options
        )
    }

    /// Registers the tools, the resource template, the prompts and the completion provider,
    /// and starts forwarding session changes as resource notifications.
    public func install() {
        for tool in tools() { server.register(tool) }
        server.register(statusTemplate())
        for prompt in FlowPrompt.allCases { server.register(makePrompt(prompt)) }
        server.setCompletionProvider { [self] request, _ in await complete(request) }
        Task { [self] in
            guard let coordinator = try? await flow.coordinator(waitingUpTo: .seconds(3600)) else { return }
            var known: Set<PaymentSID> = []
            for await session in await coordinator.changes() {
                guard let sid = session.paymentSID else { continue }
                server.notifyResourceUpdated(uri: SessionJSON.uri(callSID: session.callSID, paymentSID: sid))
                if known.insert(sid).inserted || session.phase.isFinished { server.notifyResourcesListChanged() }
                if session.phase.isFinished { known.remove(sid) }
            }
        }
    }
}
