import Foundation
import Testing
@testable import PaymentFlow
import TwilioPayments

/// The format a shared store keeps sessions in (``PaymentSession/storageJSON()``): every field
/// survives a write and a read, values are masked on the way in and out, and what cannot be read
/// is refused rather than guessed.
@Suite struct PaymentSessionStorageTests {
    func roundTrip(_ session: PaymentSession) throws -> PaymentSession {
        try PaymentSession(storageJSON: session.storageJSON())
    }

    /// Sessions in every phase and with every kind of item state, built by the reducer.
    static func samples() -> [PaymentSession] {
        let card = Sample.cardSession(
            PaymentSessionOptions(
                chargeAmount: "12.50", currency: "EUR", description: "order 7", paymentConnector: "Stripe",
                tokenType: .reusable,
                securityCode: true, postalCode: false, minPostalCodeLength: 3, validCardTypes: [.visa, .mastercard],
                timeout: 9,
                parameters: ["k": .string("v/1"), "n": .number("12.50"), "b": .bool(true)], confirmation: true,
                requireMatchingInputs: [.paymentCardNumber], input: "dtmf"))
        let requested = PaymentReducer.reduce(
            card, .captureRequested(.cardNumber, at: Sample.date, idempotencyKey: "key-capture")
        ).session
        let typed = run(
            requested,
            Sample.typing(
                .cardNumber, field: "PaymentCardNumber", masked: ["4xxx", "xxxxxxxxxxxx1111"],
                cardType: "visa", required: "payment-card-number-matcher security-code expiration-date"
            )
            .map { PaymentEvent.callbackReceived($0, at: Sample.date) })
        let failed = run(
            typed,
            [
                .captureRequested(.securityCode, at: Sample.date, idempotencyKey: "key-sc"),
                .callbackReceived(
                    Sample.callback(["Capture": "security-code", "ErrorType": "invalid-security-code"]), at: Sample.date
                ),
            ])
        var completing = typed
        completing.phase = .completing
        completing.inFlight[.complete] = "key-complete"
        let completed = run(
            typed,
            [
                .callbackReceived(
                    Sample.callback([
                        "Result": "success", "PaymentConfirmationCode": "ch_1",
                        "PaymentToken": "tok_9", "ProfileId": "p_3",
                    ]), at: Sample.date)
            ])
        let declined = run(
            typed,
            [
                .callbackReceived(
                    Sample.callback([
                        "Result": "payment-connector-error", "PaymentError": "declined",
                        "PayErrorCode": "64015", "ConnectorError": "card_declined",
                    ]), at: Sample.date)
            ])
        let ended = PaymentReducer.reduce(typed, .callEnded(at: Sample.date, status: "completed")).session
        let cancelled = run(card, [.cancelRequested(at: Sample.date, idempotencyKey: "key-cancel")])
        let starting = PaymentSession(
            callSID: Sample.call, configuration: PaymentConfiguration(),
            at: Sample.date.addingTimeInterval(0.123456789),
            id: "fixed-id", callbackSecretHash: String(repeating: "ab", count: 32))
        var withCreateKey = starting
        withCreateKey.inFlight[.create] = "key-create"
        var owned = card
        owned.owner = PaymentOwner(principal: "token:alice", tenant: "acme")
        owned.charge = ChargeAuthorization(countedOn: "2026-12-04", fromAmountDue: true)
        owned.reference = "conversation-7"
        return [
            card, requested, typed, failed, completing, completed, declined, ended, cancelled, starting, withCreateKey,
            Sample.achSession(), owned,
        ]
    }

    @Test func everySampleSurvivesAWriteAndARead() throws {
        let phases = Set(Self.samples().map(\.phase.name))
        #expect(
            phases.isSuperset(of: [
                "starting", "active", "completing", "cancelling", "completed", "failed", "call-ended",
            ]),
            "the samples cover the phases: \(phases.sorted())")
        for session in Self.samples() {
            #expect(try roundTrip(session) == session)
        }
    }

    @Test func theFormatIsStableJSONWithTheNamesItPromises() throws {
        let session = Self.samples()[2]
        let object = try #require(try JSONSerialization.jsonObject(with: session.storageJSON()) as? [String: Any])
        #expect(object["format"] as? Int == 2, "format 2 without recordings: older builds read it")
        #expect(object["callSid"] as? String == Sample.call.rawValue)
        #expect(object["paymentSid"] as? String == Sample.payment.rawValue)
        #expect(session.storageJSON() == session.storageJSON(), "the same bytes every time (sorted keys)")
        let requested = Self.samples()[1]
        let keys =
            try #require(try JSONSerialization.jsonObject(with: requested.storageJSON()) as? [String: Any])["inFlight"]
            as? [String: String]
        #expect(keys == ["capture:payment-card-number": "key-capture"])
    }

    @Test func aSessionThatPausedRecordingsIsFormatThreeAndReadsBack() throws {
        var session = Self.samples()[2]
        let recording = RecordingSID(validated: "RE" + String(repeating: "1", count: 32))
        session.recordings = RecordingsPause(state: .pauseFailed, recordings: [recording], reason: "Twilio said 21220")
        let object = try #require(try JSONSerialization.jsonObject(with: session.storageJSON()) as? [String: Any])
        #expect(object["format"] as? Int == 3, "an older build refuses it rather than drop what to resume")
        #expect(
            object["recordings"] as? NSDictionary
                == ["state": "pause-failed", "recordings": [recording.rawValue], "reason": "Twilio said 21220"])
        #expect(try roundTrip(session) == session)
        let text = String(decoding: session.storageJSON(), as: UTF8.self)
        for broken in ["\"pause-failed\"": "\"napping\"", recording.rawValue: "REnope"] {
            let bad = text.replacingOccurrences(of: broken.key, with: broken.value)
            #expect(bad != text)
            #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data(bad.utf8)) }
        }
    }

    @Test func cardDataIsMaskedOnTheWayInAndOnTheWayOut() throws {
        var leaky = Self.samples()[2]
        leaky.items[.cardNumber]?.state = .captured(masked: "4111111111111111")
        leaky.items[.securityCode] = ItemProgress()
        leaky.items[.securityCode]?.state = .captured(masked: "123")
        let text = String(decoding: leaky.storageJSON(), as: UTF8.self)
        #expect(!text.contains("4111111111111111") && !text.contains("\"123\""))
        #expect(try roundTrip(leaky).maskedValue(.cardNumber) == "xxxxxxxxxxxx1111")

        // A row written by something else, with the full number: masked when read.
        let planted = text.replacingOccurrences(of: "xxxxxxxxxxxx1111", with: "4111111111111111")
        #expect(planted.contains("4111111111111111"))
        #expect(try PaymentSession(storageJSON: Data(planted.utf8)).maskedValue(.cardNumber) == "xxxxxxxxxxxx1111")
    }

    @Test func aFormatOneSessionReadsWithoutOwner() throws {
        var session = Self.samples()[2]
        session.owner = PaymentOwner(principal: "token:alice")
        var object = try #require(try JSONSerialization.jsonObject(with: session.storageJSON()) as? [String: Any])
        object["format"] = 1
        object.removeValue(forKey: "owner")
        let read = try PaymentSession(storageJSON: try JSONSerialization.data(withJSONObject: object))
        #expect(read.owner == nil, "an older build's session has no owner: only an operator sees it")
        #expect(read.callSID == session.callSID)
    }

    @Test func whatCannotBeReadIsRefused() throws {
        let text = String(decoding: Self.samples()[0].storageJSON(), as: UTF8.self)
        let newer = text.replacingOccurrences(
            of: "\"format\":2", with: "\"format\":\(PaymentSession.storageFormat + 1)")
        #expect(newer != text)
        #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data(newer.utf8)) }
        #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data("{}".utf8)) }
        #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data("not json".utf8)) }
        let badCall = text.replacingOccurrences(of: Sample.call.rawValue, with: "CAnope")
        #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data(badCall.utf8)) }
        let badPhase = text.replacingOccurrences(of: "\"name\":\"active\"", with: "\"name\":\"dancing\"")
        #expect(badPhase != text)
        #expect(throws: PaymentSessionStorageError.self) { try PaymentSession(storageJSON: Data(badPhase.utf8)) }
    }
}
