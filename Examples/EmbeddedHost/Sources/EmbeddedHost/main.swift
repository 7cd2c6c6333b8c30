// A whole card payment without MCP: the payments system runs in this host's own ServiceGroup
// against the built-in Twilio simulator, whose simulated caller types on the keypad. The host's
// one Hummingbird application receives Twilio's status callbacks.
import Foundation
import Hummingbird
import ListenerGuard
import Logging
import PaymentFlow
import PaymentsService
import ServiceLifecycle
import TwilioPayments

var logger = Logger(label: "embedded-host")
logger.logLevel = .warning
let system = try PaymentsSystem(configuration: .simulated(digitPacing: .milliseconds(20)), logger: logger)

// The host's application: the callback routes on a loopback port (the simulator calls it there).
let router = Router()
router.addRoutes(system.callbackRoutes())
let app = Application(
    router: router, server: .guardedHTTP1(limits: ListenerLimits(), logger: logger),
    configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { await system.serverRunning($0) }, logger: logger)
let group = ServiceGroup(
    services: [system, CallbackServer(app, system: system, host: "127.0.0.1", port: 0)], logger: logger)
let running = Task { try await group.run() }

guard let coordinator = try await system.ready(waitingUpTo: .seconds(10)), let simulator = system.simulator else {
    fatalError("the payments system did not start in 10 s")
}
let call = simulator.startCall() // a live call, as Twilio would have it
var session = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
print("payment \(session.paymentSID!) started on call \(call)")

// Follow the flow's next step until the session ends, as any host does.
while !session.phase.isFinished, let sid = session.paymentSID {
    switch session.nextStep.action {
    case .capture(let item):
        print("→ \(session.nextStep.instruction)") // what a host would say to the caller
        session = try await coordinator.capture(item, paymentSID: sid)
    case .complete:
        session = try await coordinator.complete(paymentSID: sid)
    default: // the caller is typing, or Twilio is answering: wait for the next change
        let changed = try await coordinator.waitForChange(sid, afterVersion: session.version, timeout: .seconds(10))
        guard let changed, changed.version > session.version || changed.phase.isFinished else {
            fatalError("nothing happened for 10 s")
        }
        session = changed
    }
}

await group.triggerGracefulShutdown()
try await running.value
guard case .completed(let outcome) = session.phase else {
    print("no payment: \(session.phase.name)")
    exit(1)
}
print("card \(session.maskedValue(.cardNumber) ?? "?") (\(session.cardType ?? "?")), token \(outcome.token ?? "?")")
