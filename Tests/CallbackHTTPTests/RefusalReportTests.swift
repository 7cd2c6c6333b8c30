import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Synchronization
import Testing
import TwilioPayments
@testable import CallbackHTTP

/// Refused callbacks reach the host's `onRefusal` (its audit trail), bounded to ten a second.
@Suite struct RefusalReportTests {
    @Test func refusalsAreReportedWithTheirReasonAndAcceptedOnesAreNot() async throws {
        let reports = Mutex<[RefusedCallback]>([])
        let sink = RecordingSink()
        let secret = "0123456789abcdef0123456789abcdef"
        sink.allow(secret)
        let receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(
                authToken: Fixture.token, onRefusal: { refusal in reports.withLock { $0.append(refusal) } }),
            sink: sink, logger: Fixture.quiet)
        receiver.setPublicBaseURL("https://payments.example")
        let fields = [("Sid", "PK" + String(repeating: "1", count: 32)), ("Capture", "payment-card-number")]
        let url = try receiver.callbackURL(secret: secret)
        let signed = WebhookSignature(authToken: Fixture.token).sign(url: url, parameters: fields)
        let router = Router()
        router.addRoutes(receiver.routes())
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        @Sendable func headers(_ signature: String) -> HTTPFields {
            var headers = form
            headers[HTTPField.Name("X-Twilio-Signature")!] = signature
            return headers
        }
        try await Application(router: router).test(.router) { client in
            let path = "/twilio/payment-callbacks/" + secret
            let body = ByteBuffer(string: FormEncoding.encode(fields))
            try await client.execute(uri: path, method: .post, headers: headers(signed), body: body) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: path, method: .post, headers: headers("forged"), body: body) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: path, method: .post, headers: [.contentType: "text/plain"], body: body) {
                #expect($0.status == .unsupportedMediaType)
            }
        }
        let seen = reports.withLock { $0 }
        #expect(seen.map(\.reason) == ["bad_signature", "wrong_content_type"])
        #expect(seen.map(\.status) == [403, 415] && seen.allSatisfy { $0.unreported == 0 })
    }

    @Test func theBudgetAdmitsTenASecondAndCountsTheRest() {
        let budget = ReportBudget(perSecond: 10)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let admitted = (0..<25).map { _ in budget.admit(now: start) }
        #expect(admitted.prefix(10).allSatisfy { $0 == 0 } && admitted.dropFirst(10).allSatisfy { $0 == nil })
        #expect(
            budget.admit(now: start.addingTimeInterval(1)) == 15, "the next second's first says how many were left out")
        #expect(budget.admit(now: start.addingTimeInterval(1)) == 0)
    }
}
