// The host's own Hummingbird application serves Twilio's status callbacks beside its own
// routes, and knows the public URL Twilio calls (behind a proxy or a tunnel, its https URL).
// One simulated payment, then exit.
import Foundation
import Hummingbird
import ListenerGuard
import Logging
import PaymentFlow
import PaymentsService
import ServiceLifecycle
import TwilioPayments

var logger = Logger(label: "hummingbird-host")
logger.logLevel = .warning
var configuration = PaymentsConfiguration.simulated(digitPacing: .milliseconds(20))
configuration.publicURL = .provided // told below, once the host's listener is bound
let payments = try PaymentsSystem(configuration: configuration, logger: logger)

let router = Router()
router.get("health") { _, _ in "ok\n" } // the host's own routes
router.addRoutes(payments.callbackRoutes()) // POST /twilio/payment-callbacks/:secret
let app = Application(
    router: router,
    // Twilio's port faces the internet: keep it bounded.
    server: .guardedHTTP1(limits: ListenerLimits(), logger: logger),
    configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { channel in
        await payments.serverRunning(channel)
        // Behind a proxy or a tunnel this would be its public https URL.
        payments.setPublicBaseURL("http://127.0.0.1:\(channel.localAddress?.port ?? 0)")
    },
    logger: logger)

// The system first, then its listener: a failure to listen becomes the system's start failure.
let group = ServiceGroup(
    services: [payments, CallbackServer(app, system: payments, host: "127.0.0.1", port: 0)], logger: logger)
let running = Task { try await group.run() }
guard let coordinator = try await payments.ready(waitingUpTo: .seconds(10)), let simulator = payments.simulator else {
    fatalError("the payments system did not start in 10 s")
}
print("callbacks arrive at \(payments.receiver.publicBaseURL ?? "?")\(configuration.callbackPathPrefix)/…")

// Charge 9.99 on a simulated call: capture what the flow asks for, then complete.
var session = try await coordinator.start(
    callSID: simulator.startCall(), options: PaymentSessionOptions(chargeAmount: "9.99", currency: "USD"))
while !session.phase.isFinished, let sid = session.paymentSID {
    switch session.nextStep.action {
    case .capture(let item): session = try await coordinator.capture(item, paymentSID: sid)
    case .complete: session = try await coordinator.complete(paymentSID: sid)
    default:
        guard
            let changed = try await coordinator.waitForChange(
                sid, afterVersion: session.version, timeout: .seconds(10)),
            changed.version > session.version || changed.phase.isFinished
        else { fatalError("nothing happened for 10 s") }
        session = changed
    }
    print("  \(session.phase.name): \(session.nextStep.instruction)")
}
await group.triggerGracefulShutdown()
try await running.value
guard case .completed(let outcome) = session.phase else {
    print("declined: \(session.phase.name)")
    exit(1)
}
print(
    "charged 9.99 USD to card \(session.maskedValue(.cardNumber) ?? "?"), confirmation \(outcome.confirmationCode ?? "?")"
)
