import Foundation
import PaymentFlow
import PaymentsService
import Testing
import TwilioPayments
import TwilioSimulator

/// Recordings paused during capture (issue 29): a whole simulated system whose calls are
/// recorded, the simulator's recordings as the oracle of what was heard.
@Suite(.timeLimit(.minutes(1))) struct RecordingsTests {
    func system(_ mode: PaymentsConfiguration.RecordingPauseMode) throws -> PaymentsSystem {
        var configuration = PaymentsConfiguration.simulated(digitPacing: .zero)
        configuration.pauseRecordings = mode
        if mode == .off, case .simulated(var simulated, let scripts) = configuration.twilio {
            simulated.recordsCalls = true // recorded, and nothing paused: the oracle's control case
            configuration.twilio = .simulated(simulated, scripts: scripts)
        }
        return try PaymentsSystem(configuration: configuration, logger: quiet)
    }

    /// The session once its recordings have an outcome other than `paused` (the resume runs after
    /// the finish is stored, in a task of its own).
    func settled(_ coordinator: PaymentCoordinator, _ session: PaymentSession) async throws -> PaymentSession {
        var session = session
        let sid = try #require(session.paymentSID)
        let deadline = ContinuousClock.now + .seconds(20)
        while session.recordings?.state == .paused || session.recordings?.state == .pauseFailed,
            ContinuousClock.now < deadline
        {
            session =
                try await coordinator.waitForChange(sid, afterVersion: session.version, timeout: .seconds(5))
                ?? session
        }
        return session
    }

    @Test func aWholePaymentIsTakenWithTheRecordingPausedAndResumedAfter() async throws {
        let system = try system(.on)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            let recording = try #require(simulator.recordings(on: call).first)
            #expect(recording.status == "in-progress", "the simulated call is recorded from its start")
            let finished = try await settled(coordinator, try await takeCardPayment(coordinator, on: call))
            #expect(finished.phase.kind == .completed, "\(finished.phase)")
            #expect(finished.recordings == RecordingsPause(state: .resumed, recordings: [recording.sid]))
            let after = try #require(simulator.recordings(on: call).first)
            #expect(after.keypressesHeard == 0, "no keypress of the card was recorded")
            #expect(after.status == "in-progress" && after.updates == 2, "paused once, resumed once: \(after)")
        }
    }

    @Test func withoutPausingTheSameRecordingHearsTheCard() async throws {
        let system = try system(.off)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            let finished = try await takeCardPayment(coordinator, on: call)
            #expect(finished.recordings == nil)
            let recording = try #require(simulator.recordings(on: call).first)
            #expect(recording.keypressesHeard >= 16, "the oracle hears every digit typed while recording")
            #expect(recording.updates == 0)
        }
    }

    @Test func aCancelledPaymentResumesTheRecording() async throws {
        let system = try system(.on)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            let started = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            #expect(started.recordings?.state == .paused && simulator.recordings(on: call).first?.status == "paused")
            let cancelled = try await coordinator.cancel(paymentSID: try #require(started.paymentSID))
            let finished = try await settled(coordinator, cancelled)
            #expect(finished.phase.kind == .cancelled && finished.recordings?.state == .resumed, "\(finished)")
            #expect(simulator.recordings(on: call).first?.status == "in-progress")
        }
    }

    @Test func aCallThatEndsTakesItsRecordingWithItAndNothingIsResumed() async throws {
        let system = try system(.on)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall(CallerScript(entries: [.cardNumber: [.hangUp]]))
            let finished = try await settled(coordinator, try await takeCardPayment(coordinator, on: call))
            #expect(finished.phase.kind == .callEnded, "\(finished.phase)")
            #expect(finished.recordings?.state == .callEnded, "\(String(describing: finished.recordings))")
            let recording = try #require(simulator.recordings(on: call).first)
            #expect(recording.status == "completed" && recording.updates == 1, "paused once, never resumed")
        }
    }

    @Test func aFailedPauseIsReportedAndThePaymentGoesOn() async throws {
        let system = try system(.on)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            simulator.failRecordingUpdates(1)
            let started = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            #expect(started.paymentSID != nil, "the payment was created")
            #expect(started.recordings?.state == .pauseFailed && started.recordings?.recordings == [])
            #expect(started.recordings?.reason?.contains("21220") == true, "\(String(describing: started.recordings))")
            #expect(simulator.recordings(on: call).first?.status == "in-progress")
        }
    }

    @Test func aFailedPauseRefusesTheStartWhenThePauseIsRequired() async throws {
        let system = try system(.required)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            let simulator = try #require(system.simulator)
            let call = simulator.startCall()
            simulator.startRecording(on: call) // a second one: the first is paused, the second refused
            simulator.failRecordingUpdates(1, after: 1)
            await #expect {
                _ = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            } throws: { error in
                guard case .recordingsNotPaused(let reason) = error as? FlowError else { return false }
                return reason.contains("could not be paused")
            }
            let session = try #require(try await coordinator.sessions(onCall: call).first)
            #expect(session.phase.kind == .failed && session.paymentSID == nil, "nothing was created: \(session.phase)")
            #expect(simulator.recordings(on: call).allSatisfy { $0.status == "in-progress" }, "the first resumed")
            #expect(simulator.recordings(on: call).first?.updates == 2, "paused, then resumed")
            // Once the recordings can be paused, the next start on the call goes ahead.
            let started = try await coordinator.start(callSID: call, options: PaymentSessionOptions())
            #expect(started.recordings?.state == .paused && started.recordings?.recordings.count == 2)
        }
    }
}
