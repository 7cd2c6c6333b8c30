import Foundation
import Synchronization
import Testing
@testable import PaymentFlow
import TwilioPayments

/// The notices every stored change makes: what a voice app's webhook hears.
@Suite struct PaymentNoticeTests {
    final class Collected: PaymentNoticeSink {
        let notices = Mutex<[PaymentNotice]>([])
        func publish(_ notices: [PaymentNotice]) async { self.notices.withLock { $0 += notices } }
        var types: [String] {
            notices.withLock { $0.map { $0.type.rawValue + ($0.item.map { " " + $0.rawValue } ?? "") } }
        }
    }

    let api = FakePaymentsAPI()
    let sink = Collected()

    func coordinator() -> PaymentCoordinator {
        PaymentCoordinator(
            api: api, callbackURLs: StaticCallbackURLProvider(baseURL: "https://example.com/cb/"), notices: sink,
            now: { Sample.date })
    }

    @Test func aWholePaymentIsAnnouncedInOrderWithItsReference() async throws {
        let flow = coordinator()
        let started = try await flow.perform(
            .start(
                callSID: Sample.call, options: PaymentSessionOptions(chargeAmount: "9.99"),
                reference: "conv-42")
        ).session
        #expect(started.reference == "conv-42")
        let sid = try #require(started.paymentSID)
        let secret = String(try #require(api.calls.first?.statusCallback).split(separator: "/").last!)
        func deliver(_ fields: [String: String]) async throws {
            _ = try await flow.receiveCallback(secret: secret, Sample.callback(fields, sid: sid))
        }
        _ = try await flow.capture(.cardNumber, paymentSID: sid)
        try await deliver(["Capture": "payment-card-number", "PartialResult": "true", "PaymentCardNumber": "xxxx"])
        try await deliver([
            "Capture": "payment-card-number", "PartialResult": "false", "PaymentCardNumber": "xxxxxxxxxxxx1111",
            "Required": "security-code,expiration-date,postal-code",
        ])
        _ = try await flow.capture(.securityCode, paymentSID: sid)
        try await deliver(["Capture": "security-code", "ErrorType": "invalid-security-code", "PartialResult": "false"])
        _ = try await flow.cancel(paymentSID: sid)
        #expect(
            sink.types == [
                "payment.started",
                "payment.item.requested payment-card-number", "payment.item.progress payment-card-number",
                "payment.item.captured payment-card-number",
                "payment.item.requested security-code", "payment.item.invalid security-code",
                "payment.cancelled",
            ], "\(sink.types)")
        let all = sink.notices.withLock { $0 }
        #expect(Set(all.map(\.id)).count == all.count, "every notice has an id of its own")
        #expect(all.allSatisfy { $0.session.reference == "conv-42" && $0.session.paymentSID == sid })
        #expect(all.first { $0.type == .itemInvalid }?.reason == "invalid-security-code")
        #expect(all.first { $0.type == .itemProgress }?.session.maskedValue(.cardNumber) == "xxxx")
    }

    @Test func theSameChangeMakesTheSameNoticesAndNothingIsAnnouncedTwice() {
        let fresh = PaymentSession(callSID: Sample.call, configuration: PaymentConfiguration(), at: Sample.date)
        #expect(PaymentNotice.notices(from: nil, to: fresh, at: Sample.date).isEmpty, "no SID yet: nothing to announce")
        let created = PaymentReducer.reduce(fresh, .sessionCreated(Sample.payment, at: Sample.date)).session
        let once = PaymentNotice.notices(from: fresh, to: created, at: Sample.date)
        #expect(once.map(\.type) == [.started])
        #expect(
            PaymentNotice.notices(from: fresh, to: created, at: Sample.date.addingTimeInterval(5)).map(\.id)
                == once.map(\.id),
            "ids come from the change, not the clock")
        #expect(PaymentNotice.notices(from: created, to: created, at: Sample.date).isEmpty, "no change, no notice")
        let completed = PaymentReducer.reduce(
            created,
            .callbackReceived(
                Sample.callback(["Result": "success", "PaymentConfirmationCode": "ch_1"]),
                at: Sample.date)
        ).session
        #expect(PaymentNotice.notices(from: created, to: completed, at: Sample.date).map(\.type) == [.completed])
    }

    @Test func aReferenceIsCheckedAndPartOfWhatMakesAStartARepeat() async throws {
        let flow = coordinator()
        for bad in ["", String(repeating: "r", count: 257), "line\nbreak", "card 4111 1111 1111 1111"] {
            await #expect(throws: FlowError.self, "\(bad.prefix(20))") {
                try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions(), reference: bad))
            }
        }
        let first = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(), reference: "a"))
        let again = try await flow.perform(
            .start(callSID: Sample.call, options: PaymentSessionOptions(), reference: "a"))
        #expect(again.repeated && again.session.id == first.session.id)
        await #expect(throws: FlowError.sessionInProgress(callSID: Sample.call, paymentSID: first.session.paymentSID)) {
            try await flow.perform(.start(callSID: Sample.call, options: PaymentSessionOptions(), reference: "b"))
        }
    }
}
