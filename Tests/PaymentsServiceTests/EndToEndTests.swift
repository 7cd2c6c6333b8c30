import Foundation
import PaymentFlow
import PaymentsService
import PaymentsTestSupport
import Testing
import TwilioPayments
import TwilioSimulator

/// The real pieces together, as ``PaymentsSystem`` assembles them: PaymentCoordinator →
/// TwilioPaymentsClient → TwilioSimulator over HTTP; the simulated caller's signed callbacks →
/// CallbackReceiver over HTTP → coordinator.
@Suite(.serialized) struct EndToEndTests {
    struct Rig {
        let simulator: TwilioSimulator
        let coordinator: PaymentCoordinator
    }

    static let credentials = TwilioCredentials(
        accountSID: AccountSID(validated: "AC" + String(repeating: "ab", count: 16)),
        apiKeySID: APIKeySID(validated: "SK" + String(repeating: "cd", count: 16)),
        apiSecret: Secret("simulator-api-secret"), authToken: Secret("simulator-auth-token"))

    /// Runs a simulated system (callbacks signed and checked with the Auth Token) for `body`.
    static func withRig(
        shape: TwilioSimulator.CallbackShape = TwilioSimulator.CallbackShape(), _ body: (Rig) async throws -> Void
    ) async throws {
        let simulator = TwilioSimulator.Configuration(
            credentials: credentials, authToken: credentials.authToken!, callbackShape: shape)
        let system = try PaymentsSystem(
            configuration: PaymentsConfiguration(twilio: .simulated(simulator), publicURL: .loopback), logger: quiet)
        try await withGroup(served(system)) {
            let coordinator = try #require(try await system.ready(waitingUpTo: .seconds(10)))
            try await body(Rig(simulator: try #require(system.simulator), coordinator: coordinator))
        }
    }

    /// Waits until the session satisfies `done`.
    static func until(_ rig: Rig, _ sid: PaymentSID, _ done: (PaymentSession) -> Bool) async throws -> PaymentSession {
        var version: UInt64 = 0
        for _ in 0..<200 {
            guard
                let session = try await rig.coordinator.waitForChange(
                    sid, afterVersion: version, timeout: .milliseconds(200))
            else { break }
            if done(session) { return session }
            version = session.version
        }
        Issue.record("the session never reached the expected state")
        return try #require(await rig.coordinator.session(sid))
    }

    static func captureAll(_ rig: Rig, _ sid: PaymentSID, items: [PaymentItem]) async throws -> PaymentSession {
        var session = try #require(await rig.coordinator.session(sid))
        for item in items {
            session = try await rig.coordinator.capture(item, paymentSID: sid)
            session = try await until(rig, sid) { !$0.state(item).isInProgress }
        }
        return session
    }

    @Test func aWholeCardPaymentOverHTTP() async throws {
        try await Self.withRig { rig in
            let call = rig.simulator.startCall()
            let started = try await rig.coordinator.start(
                callSID: call, options: PaymentSessionOptions(chargeAmount: "12.50", currency: "USD"))
            let sid = try #require(started.paymentSID)
            var session = try await Self.captureAll(
                rig, sid, items: [.cardNumber, .securityCode, .expirationDate, .postalCode])
            #expect(session.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111" && session.cardType == "visa")
            #expect(session.maskedValue(.securityCode) == "xxx" && session.missingItems.isEmpty)
            #expect(session.nextStep.action == .complete)
            _ = try await rig.coordinator.complete(paymentSID: sid)
            session = try await Self.until(rig, sid) { $0.phase.isFinished }
            guard case .completed(let outcome) = session.phase else {
                Issue.record("\(session.phase)")
                return
            }
            #expect(outcome.confirmationCode?.hasPrefix("ch_sim_") == true)
            await rig.simulator.waitUntilQuiet()
            #expect(rig.simulator.sentCallbacks.allSatisfy { $0.status == 204 })
            #expect(!rig.simulator.sentCallbacks.contains { $0.fields.contains { $0.1.contains("4111111111111111") } })
        }
    }

    @Test func wrongCardThenRightThenDecline() async throws {
        try await Self.withRig { rig in
            let call = rig.simulator.startCall(
                CallerScript(entries: [.cardNumber: [.digits("4111111111111112")]], completion: .decline()))
            let sid = try #require(
                try await rig.coordinator.start(callSID: call, options: PaymentSessionOptions()).paymentSID)
            var session = try await Self.captureAll(rig, sid, items: [.cardNumber])
            #expect(session.state(.cardNumber) == .failed(.invalidCardNumber) && session.nextStep.topic == .error)
            session = try await Self.captureAll(
                rig, sid, items: [.cardNumber, .securityCode, .expirationDate, .postalCode])
            _ = try await rig.coordinator.complete(paymentSID: sid)
            session = try await Self.until(rig, sid) { $0.phase.isFinished }
            guard case .failed(let failure) = session.phase else {
                Issue.record("\(session.phase)")
                return
            }
            #expect(failure.payErrorCode == 64012 && failure.paymentError == "card_declined")
        }
    }

    @Test func hangUpEndsTheSessionAndAForgedCallbackChangesNothing() async throws {
        try await Self.withRig { rig in
            let call = rig.simulator.startCall(CallerScript(entries: [.expirationDate: [.hangUp]]))
            let sid = try #require(
                try await rig.coordinator.start(callSID: call, options: PaymentSessionOptions()).paymentSID)
            await rig.simulator.waitUntilQuiet()
            let url = try #require(rig.simulator.sentCallbacks.first?.url)
            _ = try await Self.captureAll(rig, sid, items: [.cardNumber])
            let before = try #require(await rig.coordinator.session(sid))
            // A forged "success" to the session's real URL, with a wrong signature.
            let forged = [("Sid", sid.rawValue), ("Result", "success"), ("PaymentConfirmationCode", "forged")]
            #expect(try await post(url, fields: forged, signature: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") == 403)
            let after = try #require(await rig.coordinator.session(sid))
            #expect(after.version == before.version && after.phase == before.phase)

            _ = try await rig.coordinator.capture(.securityCode, paymentSID: sid)
            _ = try await Self.until(rig, sid) { !$0.state(.securityCode).isInProgress }
            _ = try await rig.coordinator.capture(.expirationDate, paymentSID: sid)
            let ended = try await Self.until(rig, sid) { $0.phase.isFinished }
            #expect(ended.phase.name == "call-ended")
        }
    }

    /// Twilio's documentation leaves open what the capture-time and final callbacks say of
    /// `PartialResult` and how `Required` is spelled; the flow is correct under every reading.
    @Test(arguments: TwilioSimulator.CallbackShape.all)
    func aWholePaymentUnderEveryReadingOfTheDocumentation(shape: TwilioSimulator.CallbackShape) async throws {
        try await Self.withRig(shape: shape) { rig in
            let call = rig.simulator.startCall(CallerScript(entries: [.cardNumber: [.digits("4111111111111112")]]))
            let options = PaymentSessionOptions(
                chargeAmount: "3.10", postalCode: true, requireMatchingInputs: [.securityCode])
            let sid = try #require(try await rig.coordinator.start(callSID: call, options: options).paymentSID)
            var session = try await Self.captureAll(rig, sid, items: [.cardNumber])
            #expect(session.state(.cardNumber) == .failed(.invalidCardNumber), "\(shape)")
            #expect(
                session.missingItems == [
                    .cardNumber, .securityCode, .securityCodeMatcher, .expirationDate, .postalCode,
                ], "\(shape)")
            // Follow nextStep, as an agent does, until only completion is left.
            for _ in 0..<12 {
                guard case .capture(let item) = session.nextStep.action else { break }
                session = try await Self.captureAll(rig, sid, items: [item])
            }
            #expect(session.missingItems.isEmpty && session.requiredFromTwilio, "\(shape): \(session.missingItems)")
            #expect(
                session.maskedValue(.cardNumber) == "xxxxxxxxxxxx1111"
                    && session.maskedValue(.securityCodeMatcher) == "xxx", "\(shape)")
            #expect(session.maskedValue(.postalCode) == "94105" && session.nextStep.action == .complete, "\(shape)")
            _ = try await rig.coordinator.complete(paymentSID: sid)
            session = try await Self.until(rig, sid) { $0.phase.isFinished }
            #expect(session.phase.name == "completed", "\(shape)")
            await rig.simulator.waitUntilQuiet()
            let sent = rig.simulator.sentCallbacks
            #expect(sent.allSatisfy { $0.status == 204 }, "\(shape)")
            // The simulator told the documented truth: a callback when each capture was asked for.
            let captureTime = sent.filter { callback in
                callback.fields.contains { $0.0 == "Capture" }
                    && !callback.fields.contains {
                        [
                            "PaymentCardNumber", "SecurityCode", "ExpirationDate",
                            "PaymentCardPostalCode", "ErrorType",
                        ].contains($0.0)
                    }
            }
            #expect(captureTime.count == 6, "\(shape): one capture-time callback per capture request")
        }
    }

    /// After a cancel Twilio calls back once more; the session stays cancelled.
    @Test func aCancelledSessionStaysCancelledWhenTwilioCallsBack() async throws {
        try await Self.withRig { rig in
            let sid = try #require(
                try await rig.coordinator.start(callSID: rig.simulator.startCall(), options: PaymentSessionOptions())
                    .paymentSID)
            _ = try await Self.captureAll(rig, sid, items: [.cardNumber])
            let cancelled = try await rig.coordinator.cancel(paymentSID: sid)
            #expect(cancelled.phase.name == "cancelled")
            await rig.simulator.waitUntilQuiet()
            #expect(
                rig.simulator.sentCallbacks.last?.fields.contains { $0.0 == "Capture" } == false,
                "the callback after cancel")
            #expect(rig.simulator.sentCallbacks.last?.status == 204)
            #expect(try await rig.coordinator.session(sid)?.phase.name == "cancelled")
        }
    }
}
