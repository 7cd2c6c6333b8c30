import CallbackHTTP
import Foundation
import Hummingbird
import ListenerGuard
import Logging
import PaymentFlow
import PaymentsService
import PaymentsTestSupport
import ServiceLifecycle
import Synchronization
import Testing
import TwilioPayments
import TwilioSimulator

/// Test systems log only what matters.
let quiet: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

/// Runs `services` in a group for the duration of `body`, then shuts the group down gracefully
/// and waits for it to end (so a service that does not stop fails the test by hanging it,
/// within the suite's time limit, instead of leaking).
func withGroup<T: Sendable>(_ services: [any Service], _ body: () async throws -> T) async throws -> T {
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: quiet))
    let running = Task { try await group.run() }
    do {
        let value = try await body()
        await group.triggerGracefulShutdown()
        try await running.value
        return value
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        throw error
    }
}

/// The system and the host application that serves its callback routes on loopback (a free
/// port unless `port` is given), as every host runs them: the system first, then the listener.
func served(
    _ system: PaymentsSystem, port: Int = 0, routes: (Router<BasicRequestContext>) -> Void = { _ in }
)
    -> [any Service]
{
    let router = Router()
    router.addRoutes(system.callbackRoutes())
    routes(router)
    let app = Application(
        router: router, server: .guardedHTTP1(limits: ListenerLimits(), logger: quiet),
        configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)),
        onServerRunning: { await system.serverRunning($0) }, logger: quiet)
    return [system, CallbackServer(app, system: system, host: "127.0.0.1", port: port)]
}

/// Takes a whole card payment by following the flow's next step, as any host would: start,
/// capture what is asked while the simulated caller types, complete, wait for the result.
func takeCardPayment(
    _ coordinator: PaymentCoordinator, on call: CallSID, amount: String? = nil
) async throws -> PaymentSession {
    var options = PaymentSessionOptions()
    options.chargeAmount = amount
    var session = try await coordinator.start(callSID: call, options: options)
    for _ in 0..<50 {
        guard let sid = session.paymentSID else {
            // Twilio has not answered the create yet: wait for the session to change.
            session = try await coordinator.sessions(onCall: call).first ?? session
            if session.paymentSID == nil { await Task.yield() }
            continue
        }
        switch session.nextStep.action {
        case .capture(let item): session = try await coordinator.capture(item, paymentSID: sid)
        case .complete: session = try await coordinator.complete(paymentSID: sid)
        case .tellCaller, .startOver, .callOver: return session
        case .waitForStart, .waitForCaller, .waitForResult, .waitForCancellation:
            session =
                try await coordinator.waitForChange(sid, afterVersion: session.version, timeout: .seconds(10))
                ?? session
        }
    }
    Issue.record("the payment did not finish in 50 steps: \(session.phase.name)")
    return session
}

@Suite struct PaymentsSystemTests {
    @Test func aSimulatedSystemTakesAWholePaymentAndShutsDown() async throws {
        let system = try PaymentsSystem(configuration: .simulated(digitPacing: .zero), logger: quiet)
        let session = try await withGroup(served(system)) {
            guard let coordinator = try await system.ready(waitingUpTo: .seconds(10)) else {
                Issue.record("not ready")
                return nil as PaymentSession?
            }
            let call = try #require(system.simulator).startCall()
            return try await takeCardPayment(coordinator, on: call)
        }
        let finished = try #require(session)
        guard case .completed(let outcome) = finished.phase else {
            Issue.record("expected completed, got \(finished.phase)")
            return
        }
        #expect(outcome.token?.isEmpty == false)
        #expect(finished.cardType != nil)
        #expect(finished.items[.cardNumber]?.state == .captured(masked: "xxxxxxxxxxxx1111"))
        // After shutdown, readiness answers at once (it came), and the system does not run again.
        #expect(try await system.ready(waitingUpTo: .zero) === system.coordinator)
        await #expect(throws: PaymentsStartError.alreadyRun) { try await system.run() }
    }

    /// A simulator playing IE1's host (issue 29): every request of a whole payment leaves the
    /// client for `api.dublin.ie1.twilio.com` and arrives there, with the usual paths.
    @Test func aSimulatedRegionTakesAWholePaymentThroughItsOwnHost() async throws {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        let host = TwilioEndpoint(region: .ie1).host
        if case .simulated(var simulated, let scripts) = configuration.twilio {
            simulated.host = host
            configuration.twilio = .simulated(simulated, scripts: scripts)
        }
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let finished = try await takeCardPayment(coordinator, on: simulator.startCall())
            #expect(finished.phase.kind == .completed, "\(finished.phase)")
            let hosts = simulator.requestHosts
            #expect(Array(hosts.keys) == [host] && (hosts[host] ?? 0) >= 5, "\(hosts)")
        }
    }

    /// The maintenance service's periodic sweep (issue 31): a caller who hangs up silently, with
    /// no command sent after the start, is noticed by asking Twilio for the call, and the session
    /// ends as call-ended.
    @Test func thePeriodicSweepNoticesASilentHangUpWithNoCommandSent() async throws {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.callCheckInterval = .milliseconds(50)
        configuration.silentAfter = .zero
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            let started = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            let sid = try #require(started.paymentSID)
            simulator.hangUp(call, silently: true)
            await simulator.waitUntilQuiet()
            #expect(simulator.sentCallbacks.allSatisfy { !$0.fields.contains { $0 == ("Result", "caller-hung-up") } })
            // Waited for as a change of the session (a liveness bound, not a timing claim).
            var session = started
            let deadline = ContinuousClock.now + .seconds(30)
            while session.phase.name != "call-ended", ContinuousClock.now < deadline {
                session =
                    try await coordinator.waitForChange(sid, afterVersion: session.version, timeout: .seconds(5))
                    ?? session
            }
            #expect(session.phase.name == "call-ended", "\(session.phase)")
        }
    }

    /// Twilio's throttling (issue 29): a short throttle is retried with the same idempotency
    /// key, so the payment starts once; a sustained one is a refusal that says Twilio is
    /// throttling and may be retried, and leaves no session behind, so a later start works.
    @Test func throttlingIsRetriedAndASustainedOneIsARetryableRefusal() async throws {
        let system = try PaymentsSystem(configuration: .simulated(digitPacing: .zero), logger: quiet)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            simulator.throttle(TwilioSimulator.Throttle(requests: 2, retryAfter: 0))
            let call = simulator.startCall()
            let started = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            #expect(simulator.throttledRequests == 2)
            #expect(started.paymentSID != nil && started.phase.name == "active")

            simulator.throttle(TwilioSimulator.Throttle(requests: nil, retryAfter: 0))
            let other = simulator.startCall()
            do {
                _ = try await coordinator.start(callSID: other, options: PaymentSessionOptions())
                Issue.record("a sustained throttle was not refused")
            } catch let error as FlowError {
                #expect(error.isRetryable, "\(error)")
                #expect(error.description.hasPrefix("Twilio is throttling this account's requests"), "\(error)")
                #expect(error.description.contains("4 attempts refused"), "\(error)")
            }
            #expect(simulator.throttledRequests == 6)
            simulator.throttle(nil)
            let again = try await coordinator.start(callSID: other, options: PaymentSessionOptions())
            #expect(again.paymentSID != nil)
        }
    }

    /// A graceful shutdown (what SIGTERM starts) while the simulated caller is typing leaves
    /// nothing running: once the group has ended, no keypress is played, no callback is sent and
    /// the session does not change.
    @Test func aShutdownWhileTheCallerTypesLeavesNothingRunning() async throws {
        // 100 ms between keypresses: a card number takes seconds, so the shutdown comes mid-typing.
        var configuration = PaymentsConfiguration.simulated(digitPacing: .milliseconds(100))
        if case .simulated(var simulated, let scripts) = configuration.twilio {
            simulated.callbackHistoryLimit = 1000 // what the test reads
            configuration.twilio = .simulated(simulated, scripts: scripts)
        }
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let simulator = try #require(system.simulator)
        let (sid, sentAtShutdown) = try await withGroup(served(system)) { () -> (PaymentSID, Int) in
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let call = simulator.startCall()
            var session = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            for _ in 0..<1000 where session.paymentSID == nil {
                session = try await coordinator.sessions(onCall: call).first ?? session
                try await Task.sleep(for: .milliseconds(10))
            }
            let sid = try #require(session.paymentSID)
            session = try await coordinator.capture(.cardNumber, paymentSID: sid)
            // The caller has started typing: a progress callback has been sent.
            let deadline = ContinuousClock.now + .seconds(30)
            while !simulator.sentCallbacks.contains(where: { $0.fields.contains { $0 == ("PartialResult", "true") } }),
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(simulator.sentCallbacks.contains { $0.fields.contains { $0 == ("PartialResult", "true") } })
            return (sid, simulator.sentCallbacks.count)
        }
        // The group has ended. Whatever was queued when it was told to stop may have left then;
        // after that, nothing.
        let settled = simulator.sentCallbacks.count
        #expect(settled >= sentAtShutdown)
        let version = try await system.coordinator.session(sid)?.version
        try await Task.sleep(for: .seconds(1)) // ten keypresses' worth
        #expect(simulator.sentCallbacks.count == settled, "callbacks were sent after the system stopped")
        #expect(try await system.coordinator.session(sid)?.version == version, "the session changed after shutdown")
    }

    @Test func itsCoordinatorExistsAtBirthAndSaysItIsStillStartingBeforeItRuns() async throws {
        // Never run: a start that waited for the system would never be answered.
        let system = try PaymentsSystem(configuration: .simulated(), logger: quiet)
        do {
            _ = try await system.coordinator.start(
                callSID: CallSID(validated: "CA" + String(repeating: "5", count: 32)),
                options: PaymentSessionOptions())
            Issue.record("a payment started on a system that never ran")
        } catch {
            #expect(error.description.contains("still starting"), "\(error)")
            #expect(error.isRetryable, "a client may call again")
        }
        #expect(try await system.coordinator.activeSessions().isEmpty, "nothing was stored")
        #expect(try await system.ready(waitingUpTo: .zero) == nil)
    }

    /// A host's step once the system is ready runs then, once; a system that never becomes ready
    /// (here: it never hears from a listener) runs it never, and the service stays until the
    /// group shuts down instead of ending it.
    @Test func whenReadyRunsOnceReadyAndNeverEndsTheGroupEarly() async throws {
        let system = try PaymentsSystem(configuration: .simulated(digitPacing: .zero), logger: quiet)
        let ran = Mutex(0)
        let ready = Announced<Void>()
        let services =
            served(system) + [
                system.whenReady { _ in
                    ran.withLock { $0 += 1 }
                    ready.set(())
                }
            ]
        try await withGroup(services) { try await ready.value() }
        #expect(ran.withLock { $0 } == 1)

        // A system whose listener cannot bind (the port is held) never becomes ready; as over stdio,
        // its failure does not end the group, and neither does its host's step.
        let port = Announced<Int>()
        let holding = Application(
            router: Router(), configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.set(channel.localAddress?.port ?? 0) }, logger: quiet)
        try await withGroup([holding]) {
            let busy = try await port.value()
            let failing = try PaymentsSystem(configuration: .simulated(digitPacing: .zero), logger: quiet)
            let never = Mutex(false)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: served(failing, port: busy).map {
                        .init(service: $0, failureTerminationBehavior: .ignore)
                    }
                        + [.init(service: failing.whenReady { _ in never.withLock { $0 = true } })],
                    logger: quiet))
            let running = Task { try await group.run() }
            await #expect(throws: PaymentsStartError.self) { _ = try await failing.ready(waitingUpTo: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(200))
            await group.triggerGracefulShutdown()
            // A service that ended early would have ended the group with an error by now.
            try await running.value
            #expect(never.withLock { $0 } == false)
        }
    }

    @Test func aBusyCallbackPortIsReportedWithTheAddress() async throws {
        // Hold a port with a real listener, then ask the system for the same one.
        let holder = Application(
            router: Router(), configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { _ in }, logger: quiet)
        let port = Announced<Int>()
        let holding = Application(
            router: Router(), configuration: holder.configuration,
            onServerRunning: { channel in port.set(channel.localAddress?.port ?? 0) }, logger: quiet)
        try await withGroup([holding]) {
            let busy = try await port.value()
            let system = try PaymentsSystem(configuration: .simulated(), logger: quiet)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: served(system, port: busy).map { .init(service: $0) }, logger: quiet))
            await #expect(throws: (any Error).self) { try await group.run() }
            do throws(PaymentsStartError) {
                _ = try await system.ready(waitingUpTo: .seconds(5))
                Issue.record("ready on a busy port")
            } catch {
                guard case .callbackListenerFailed(let host, let failedPort, _) = error else {
                    Issue.record("expected callbackListenerFailed, got \(error)")
                    return
                }
                #expect(host == "127.0.0.1" && failedPort == busy)
            }
            let refusal = await #expect(throws: FlowError.self) {
                _ = try await system.coordinator.start(
                    callSID: CallSID(validated: "CA" + String(repeating: "6", count: 32)),
                    options: PaymentSessionOptions())
            }
            #expect(
                refusal?.description.contains("could not listen on 127.0.0.1:\(busy)") == true,
                "\(String(describing: refusal))")
        }
    }

    @Test func configurationMistakesAreFoundBeforeAnythingRuns() throws {
        var mounted = PaymentsConfiguration.simulated()
        mounted.waitsForListener = false
        #expect(throws: PaymentsConfigurationError.publicURLNeedsListener("loopback")) {
            try PaymentsSystem(configuration: mounted, logger: quiet)
        }
        mounted.publicURL = .ngrok(authToken: Secret("t"))
        #expect(throws: PaymentsConfigurationError.publicURLNeedsListener("ngrok")) {
            try PaymentsSystem(configuration: mounted, logger: quiet)
        }
        mounted.publicURL = .explicit("payments.example.com")
        #expect(throws: PaymentsConfigurationError.invalidPublicURL("payments.example.com")) {
            try PaymentsSystem(configuration: mounted, logger: quiet)
        }
        mounted.publicURL = .explicit("https://payments.example.com")
        #expect(throws: Never.self) { try PaymentsSystem(configuration: mounted, logger: quiet) }
    }

    /// A host that shuts down before it ever provides the public URL is not kept waiting, and
    /// readiness says why; a system runs once.
    @Test func aShutdownBeforeTheURLIsProvidedEndsEverythingAndRunsOnlyOnce() async throws {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.waitsForListener = false
        configuration.publicURL = .provided
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let early = try await withGroup([system]) { try await system.ready(waitingUpTo: .zero) }
        #expect(early == nil, "not ready without the public URL")
        // withGroup returned: the group ended on its graceful shutdown, without the URL.
        await #expect(throws: PaymentsStartError.stopped) { _ = try await system.ready(waitingUpTo: .seconds(5)) }
        await #expect(throws: PaymentsStartError.alreadyRun) { try await system.run() }
    }

    /// A host whose own application knows the public URL (behind its proxy) provides it, and
    /// serves the callback routes beside its own.
    @Test func aHostServesTheCallbackRoutesBesideItsOwnAndProvidesTheURL() async throws {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.waitsForListener = false
        configuration.publicURL = .provided
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let router = Router()
        router.get("hello") { _, _ in "the host's own route\n" }
        router.addRoutes(system.callbackRoutes())
        let hostPort = Announced<Int>()
        let host = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                system.setPublicBaseURL("http://127.0.0.1:\(port)")
                hostPort.set(port)
            }, logger: quiet)
        let session = try await withGroup([system, host]) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let port = try await hostPort.value()
            let hello = try await URLSessionTransport().send(
                TwilioPayments.HTTPRequest(
                    method: "GET", url: URL(string: "http://127.0.0.1:\(port)/hello")!, headers: [], body: nil,
                    // A liveness bound: the whole suite on two cores once took more than 5 s here.
                    timeout: .seconds(30)))
            #expect(String(decoding: hello.body, as: UTF8.self) == "the host's own route\n")
            let call = try #require(system.simulator).startCall()
            return try await takeCardPayment(coordinator, on: call, amount: "12.50")
        }
        guard case .completed(let outcome) = session.phase else {
            Issue.record("expected completed, got \(session.phase)")
            return
        }
        #expect(outcome.confirmationCode?.isEmpty == false, "a charge has a confirmation code")
    }
}

/// `/livez` and `/readyz` on the host's listener, as a Kubernetes probe reads them.
@Suite struct HealthTests {
    func get(_ path: String, from system: PaymentsSystem) async throws -> (status: Int, body: String) {
        let base = try #require(system.receiver.publicBase.value)
        let response = try await URLSessionTransport().send(
            TwilioPayments.HTTPRequest(
                method: "GET", url: URL(string: base + path)!, headers: [], body: nil, timeout: .seconds(5)))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func readinessSaysWhetherAPaymentCanBeTakenNowAndNamesNothing() async throws {
        let store = SwitchableStore()
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.store = store
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let starting = await system.readiness()
        #expect(!starting.isReady)
        #expect(starting.checks.first { $0.name == "started" }?.failure == "the payment system is still starting")
        #expect(starting.checks.first { $0.name == "publicURL" }?.failure == "not known yet")
        try await withGroup(served(system, routes: { $0.addRoutes(system.healthRoutes()) })) {
            _ = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let live = try await get("/livez", from: system)
            #expect(live.status == 200 && live.body == "ok\n")
            let ready = try await get("/readyz", from: system)
            #expect(ready.status == 200, "\(ready.body)")
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any])
            #expect(json["ready"] as? Bool == true)
            #expect(
                json["checks"] as? [String: String]
                    == ["started": "ok", "publicURL": "ok", "twilio": "ok", "store": "ok"])

            // The store goes away: not ready, saying which check fails and nothing of the store.
            store.switchOff()
            let away = await system.readiness(reusingFor: .zero)
            #expect(!away.isReady)
            #expect(away.checks.first { $0.name == "store" }?.failure == "the store does not answer")
            #expect(!away.json.contains("switched"), "the store's own reason stays in the logs")
            let refused = try await get("/readyz", from: system)
            #expect(refused.status == 503 && refused.body.contains("\"store\":\"the store does not answer\""))
            // An answer is reused while it is fresh: a probe that comes often asks the store little.
            store.switchOn()
            #expect(!(await system.readiness(reusingFor: .seconds(60)).isReady), "the last answer, reused")
            #expect(await system.readiness(reusingFor: .zero).isReady, "back once the store answers")
        }
    }
}

/// A value one task sets and another awaits (test-side; the system's own readiness is internal).
final class Announced<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    func set(_ value: Value) {
        let waiters = state.withLock { state in
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    func value() async throws -> Value {
        await withCheckedContinuation { continuation in
            let value = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }
}
