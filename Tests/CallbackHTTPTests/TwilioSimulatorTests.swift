import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing
import TwilioPayments
import TwilioSimulator

@Suite struct TwilioSimulatorTests {
    let simulator = TwilioSimulator(
        configuration: .init(credentials: Fixture.credentials, authToken: Fixture.token), logger: Fixture.quiet)
    var account: String { Fixture.credentials.accountSID.rawValue }
    var auth: String {
        "Basic " + Data("\(Fixture.credentials.apiKeySID):simulator-api-secret".utf8).base64EncodedString()
    }

    func headers(auth: String? = nil) -> HTTPFields {
        [.authorization: auth ?? self.auth, .contentType: "application/x-www-form-urlencoded"]
    }

    func form(_ pairs: [(String, String)]) -> ByteBuffer { ByteBuffer(string: FormEncoding.encode(pairs)) }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(String(buffer: buffer).utf8))) as? [String: Any] ?? [:]
    }

    static let callback = "http://127.0.0.1:9/unused"

    /// The throttle answers as Twilio does (429, error 20429, `Retry-After`), before the request
    /// has any effect, for as many requests as asked, then lets them through.
    @Test func throttlesAsTwilioDoes() async throws {
        let call = simulator.startCall()
        let create = "/2010-04-01/Accounts/\(account)/Calls/\(call)/Payments.json"
        let body = form([("IdempotencyKey", "throttled-once"), ("StatusCallback", Self.callback)])
        simulator.throttle(TwilioSimulator.Throttle(requests: 2, retryAfter: 3))
        try await Application(router: simulator.makeRouter()).test(.router) { client in
            // Authentication comes first: a bad key is 20003 and uses up no throttled request.
            try await client.execute(
                uri: create, method: .post, headers: headers(auth: "Basic bm9wZTpub3Bl"), body: body
            ) { response in
                #expect(response.status == .unauthorized)
            }
            for _ in 0..<2 {
                try await client.execute(uri: create, method: .post, headers: headers(), body: body) { response in
                    #expect(response.status == .tooManyRequests && response.headers[.retryAfter] == "3")
                    #expect(json(response.body)["code"] as? Int == 20429)
                }
            }
            // The same key now creates the payment: the refusals did nothing.
            try await client.execute(uri: create, method: .post, headers: headers(), body: body) { response in
                #expect(response.status == .created, "\(String(buffer: response.body))")
            }
        }
        #expect(simulator.throttledRequests == 2)
    }

    @Test func enforcesTwilioRules() async throws {
        let call = simulator.startCall()
        let create = "/2010-04-01/Accounts/\(account)/Calls/\(call)/Payments.json"
        try await Application(router: simulator.makeRouter()).test(.router) { client in
            // Authentication.
            try await client.execute(
                uri: create, method: .post, headers: headers(auth: "Basic bm9wZTpub3Bl"), body: form([])
            ) { response in
                #expect(response.status == .unauthorized && json(response.body)["code"] as? Int == 20003)
            }
            // Required parameters and enum values.
            try await client.execute(
                uri: create, method: .post, headers: headers(), body: form([("StatusCallback", Self.callback)])
            ) { response in
                #expect(
                    response.status == .badRequest
                        && (json(response.body)["message"] as? String)?.contains("IdempotencyKey") == true)
            }
            try await client.execute(
                uri: create, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "a"), ("StatusCallback", Self.callback), ("PaymentMethod", "cash")])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64020)
            }
            try await client.execute(
                uri: create, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "b"), ("StatusCallback", "http://evil.example.com/x")])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64016)
            }
            try await client.execute(
                uri: create, method: .post, headers: headers(),
                body: form([
                    ("IdempotencyKey", "c"), ("StatusCallback", Self.callback),
                    ("BankAccountType", "consumer-checking"),
                ])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64017)
            }
            try await client.execute(
                uri: create, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "d"), ("StatusCallback", Self.callback), ("PaymentConnector", "Nope")])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64004)
            }
            // A session, its idempotent replay, and the one-per-call rule.
            var sid = ""
            let ok = form([("IdempotencyKey", "create-1"), ("StatusCallback", Self.callback)])
            try await client.execute(uri: create, method: .post, headers: headers(), body: ok) { response in
                #expect(response.status == .created)
                let body = json(response.body)
                sid = body["sid"] as? String ?? ""
                #expect(Set(body.keys) == ["account_sid", "call_sid", "sid", "date_created", "date_updated", "uri"])
                #expect(PaymentSID(sid) != nil && TwilioDate.parseRFC2822(body["date_created"] as? String ?? "") != nil)
            }
            try await client.execute(uri: create, method: .post, headers: headers(), body: ok) { response in
                #expect(
                    response.status == .created && json(response.body)["sid"] as? String == sid,
                    "replayed, not repeated")
            }
            try await client.execute(
                uri: create, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "create-2"), ("StatusCallback", Self.callback)])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64021)
            }
            let update = "/2010-04-01/Accounts/\(account)/Calls/\(call)/Payments/\(sid).json"
            try await client.execute(
                uri: update, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "u1"), ("StatusCallback", Self.callback)])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64018)
            }
            try await client.execute(
                uri: update, method: .post, headers: headers(),
                body: form([
                    ("IdempotencyKey", "u2"), ("StatusCallback", Self.callback), ("Capture", "security-code"),
                    ("Status", "complete"),
                ])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64018)
            }
            try await client.execute(
                uri: update, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "u3"), ("StatusCallback", Self.callback), ("Status", "complete")])
            ) { response in
                #expect(json(response.body)["code"] as? Int == 64019)
            }
            try await client.execute(
                uri: update, method: .post, headers: headers(),
                body: form([("IdempotencyKey", "u4"), ("StatusCallback", Self.callback), ("Status", "cancel")])
            ) { response in
                #expect(response.status == .accepted)
            }
            try await client.execute(
                uri: update, method: .post, headers: headers(),
                body: form([
                    ("IdempotencyKey", "u5"), ("StatusCallback", Self.callback), ("Capture", "payment-card-number"),
                ])
            ) { response in
                #expect(response.status == .badRequest, "cancel is final")
            }
            try await client.execute(
                uri: "/2010-04-01/Accounts/\(account)/Calls/\(call).json", method: .get, headers: headers()
            ) { response in
                #expect(json(response.body)["status"] as? String == "in-progress")
            }
        }
    }
}
