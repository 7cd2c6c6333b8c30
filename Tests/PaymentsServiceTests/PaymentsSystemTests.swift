import CallbackHTTP
import Foundation
import Hummingbird
import Logging
import PaymentFlow
import PaymentsService
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
        let session = try await withGroup([system]) {
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
        let (sid, sentAtShutdown) = try await withGroup([system]) { () -> (PaymentSID, Int) in
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
        let system = try PaymentsSystem(configuration: .simulated(), logger: quiet)
        let began = ContinuousClock.now
        do {
            _ = try await system.coordinator.start(
                callSID: CallSID(validated: "CA" + String(repeating: "5", count: 32)),
                options: PaymentSessionOptions())
            Issue.record("a payment started on a system that never ran")
        } catch {
            #expect(error.description.contains("still starting"), "\(error)")
            #expect(error.isRetryable, "a client may call again")
        }
        #expect(ContinuousClock.now - began < .seconds(5), "answered at once, not kept waiting")
        #expect(try await system.coordinator.activeSessions().isEmpty, "nothing was stored")
        #expect(try await system.ready(waitingUpTo: .zero) == nil)
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
            var configuration = PaymentsConfiguration.simulated()
            configuration.callbackListener = .own(host: "127.0.0.1", port: busy)
            let system = try PaymentsSystem(configuration: configuration, logger: quiet)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(services: [.init(service: system)], logger: quiet))
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
        mounted.callbackListener = .mounted
        #expect(throws: PaymentsConfigurationError.publicURLNeedsOwnListener("loopback")) {
            try PaymentsSystem(configuration: mounted, logger: quiet)
        }
        mounted.publicURL = .ngrok(authToken: Secret("t"))
        #expect(throws: PaymentsConfigurationError.publicURLNeedsOwnListener("ngrok")) {
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
        configuration.callbackListener = .mounted
        configuration.publicURL = .provided
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let early = try await withGroup([system]) { try await system.ready(waitingUpTo: .zero) }
        #expect(early == nil, "not ready without the public URL")
        // withGroup returned: the group ended on its graceful shutdown, without the URL.
        await #expect(throws: PaymentsStartError.stopped) { _ = try await system.ready(waitingUpTo: .seconds(5)) }
        await #expect(throws: PaymentsStartError.alreadyRun) { try await system.run() }
    }

    @Test func aHostMountsTheCallbackRoutesInItsOwnApplication() async throws {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.callbackListener = .mounted
        configuration.publicURL = .provided
        let system = try PaymentsSystem(configuration: configuration, logger: quiet)
        let router = Router()
        router.get("hello") { _, _ in "the host's own route\n" }
        system.addCallbackRoutes(to: router)
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
            #expect(system.receiver.boundPort == nil, "the system runs no listener of its own")
            let port = try await hostPort.value()
            let hello = try await URLSessionTransport().send(
                TwilioPayments.HTTPRequest(
                    method: "GET", url: URL(string: "http://127.0.0.1:\(port)/hello")!, headers: [], body: nil,
                    timeout: .seconds(5)))
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
