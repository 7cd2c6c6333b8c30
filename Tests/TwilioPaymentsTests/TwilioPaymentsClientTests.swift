import Foundation
import Testing
@testable import TwilioPayments

@Suite(.serialized) struct TwilioPaymentsClientTests {
    @Test func createsAPaymentWithEveryParameter() async throws {
        let server = try LoopbackHTTPServer(script: [.respond(status: 201, body: Fixture.paymentBody)])
        let options = PaymentSessionOptions(
            chargeAmount: "9.99", currency: "USD", description: "Order #42", paymentConnector: "Default",
            paymentMethod: .creditCard,
            tokenType: .reusable, securityCode: true, postalCode: false, minPostalCodeLength: 5,
            validCardTypes: [.visa, .amex],
            timeout: 10,
            parameters: ["AVSName": .string("Ada \"L\""), "Amount/Tax": .number("0.10"), "Test": .bool(false)],
            confirmation: true,
            requireMatchingInputs: [.paymentCardNumber, .securityCode], input: "dtmf"
        )
        let payment = try await Fixture.client(server).createPayment(
            callSID: Fixture.call, options: options, idempotencyKey: "key-1",
            statusCallback: Fixture.callback)
        #expect(
            payment.sid == Fixture.payment && payment.callSID == Fixture.call && payment.accountSID == Fixture.account)
        #expect(payment.dateCreated == Date(timeIntervalSince1970: 1_576_699_321))
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/2010-04-01/Accounts/\(Fixture.account)/Calls/\(Fixture.call)/Payments.json")
        let basic = "Basic " + Data("\(Fixture.apiKey):\(Fixture.secret)".utf8).base64EncodedString()
        #expect(request.headers["authorization"] == basic)
        #expect(request.headers["content-type"] == "application/x-www-form-urlencoded")
        #expect(
            request.form == [
                "IdempotencyKey": "key-1", "StatusCallback": Fixture.callback, "ChargeAmount": "9.99",
                "Currency": "USD",
                "Description": "Order #42", "PaymentConnector": "Default", "PaymentMethod": "credit-card",
                "TokenType": "reusable",
                "SecurityCode": "true", "PostalCode": "false", "MinPostalCodeLength": "5",
                "ValidCardTypes": "visa amex", "Timeout": "10",
                "Input": "dtmf", "Parameter": #"{"AVSName":"Ada \"L\"","Amount/Tax":0.10,"Test":false}"#,
                "Confirmation": "true", "RequireMatchingInputs": "payment-card-number,security-code",
            ])
    }

    @Test(arguments: PaymentItem.allCases)
    func capturesEveryItem(item: PaymentItem) async throws {
        let server = try LoopbackHTTPServer(script: [.respond(status: 202, body: Fixture.paymentBody)])
        _ = try await Fixture.client(server).updatePayment(
            callSID: Fixture.call, paymentSID: Fixture.payment, update: .capture(item),
            idempotencyKey: "k", statusCallback: Fixture.callback)
        let request = try #require(server.requests.first)
        #expect(request.path.hasSuffix("/Payments/\(Fixture.payment).json"))
        #expect(request.form == ["IdempotencyKey": "k", "StatusCallback": Fixture.callback, "Capture": item.rawValue])
    }

    @Test(arguments: PaymentSessionStatus.allCases)
    func completesAndCancels(status: PaymentSessionStatus) async throws {
        let server = try LoopbackHTTPServer(script: [.respond(status: 202, body: Fixture.paymentBody)])
        _ = try await Fixture.client(server).updatePayment(
            callSID: Fixture.call, paymentSID: Fixture.payment, update: .status(status),
            idempotencyKey: "k", statusCallback: Fixture.callback)
        #expect(server.requests.first?.form["Status"] == status.rawValue)
    }

    @Test func retriesWithTheSameIdempotencyKey() async throws {
        let server = try LoopbackHTTPServer(script: [
            .respond(
                status: 429, headers: ["Retry-After": "0"],
                body: #"{"code":20429,"message":"Too Many Requests","status":429}"#),
            .drop,
            .respond(status: 503, body: "{}"),
            .respond(status: 201, body: Fixture.paymentBody),
        ])
        let payment = try await Fixture.client(server).createPayment(
            callSID: Fixture.call, options: PaymentSessionOptions(),
            idempotencyKey: "same-key", statusCallback: Fixture.callback)
        #expect(payment.sid == Fixture.payment)
        let requests = server.requests
        #expect(requests.count == 4)
        #expect(Set(requests.map { $0.form["IdempotencyKey"] }) == ["same-key"])
        #expect(Set(requests.map(\.body)).count == 1, "every retry re-sends the identical body")
    }

    @Test func neverRetriesAClientError() async throws {
        let server = try LoopbackHTTPServer(script: [
            .respond(
                status: 400,
                body:
                    #"{"code":64018,"message":"Capture or Status required","more_info":"https://www.twilio.com/docs/errors/64018","status":400}"#
            )
        ])
        do {
            _ = try await Fixture.client(server).updatePayment(
                callSID: Fixture.call, paymentSID: Fixture.payment,
                update: .capture(.securityCode), idempotencyKey: "k", statusCallback: Fixture.callback)
            Issue.record("no error")
        } catch let error as TwilioError {
            #expect(error.code == 64018)
            #expect(error.description.contains("exactly one of Capture or Status"))
            #expect(!error.description.contains(Fixture.secret))
        }
        #expect(server.requests.count == 1)
    }

    @Test func givesUpAfterTheAttemptBudget() async throws {
        let server = try LoopbackHTTPServer(script: [], fallback: .respond(status: 502, body: ""))
        do {
            _ = try await Fixture.client(server).fetchCall(Fixture.call)
            Issue.record("no error")
        } catch let error as TwilioError {
            guard case .api(let apiError) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(apiError.httpStatus == 502 && apiError.message == "Bad Gateway")
        }
        #expect(server.requests.count == 4)
    }

    @Test func reportsTransportFailuresDistinctly() async throws {
        let server = try LoopbackHTTPServer(script: [], fallback: .drop)
        do {
            _ = try await Fixture.client(server, retry: RetryPolicy(maximumAttempts: 2, initialDelay: .milliseconds(1)))
                .fetchCall(Fixture.call)
            Issue.record("no error")
        } catch let error as TwilioError {
            guard case .transport(_, let attempts) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(attempts == 2)
        }
    }

    @Test func decodesProblemDetails() async throws {
        let server = try LoopbackHTTPServer(script: [
            .respond(
                status: 401,
                body:
                    #"{"type":"https://www.twilio.com/docs/errors/20003","title":"Authentication Error","status":401,"code":20003,"detail":"Invalid username"}"#
            )
        ])
        do {
            _ = try await Fixture.client(server).fetchCall(Fixture.call)
            Issue.record("no error")
        } catch let error as TwilioError {
            guard case .api(let apiError) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(apiError.code == 20003 && apiError.message == "Invalid username")
            #expect(apiError.moreInfo == "https://www.twilio.com/docs/errors/20003")
            #expect(apiError.remedy?.contains("API key") == true)
        }
    }

    @Test func fetchesACall() async throws {
        let body = #"{"sid":"\#(Fixture.call)","status":"in-progress","direction":"inbound","parent_call_sid":null}"#
        let server = try LoopbackHTTPServer(script: [.respond(status: 200, body: body)])
        let call = try await Fixture.client(server).fetchCall(Fixture.call)
        #expect(call.isActive && call.status == .inProgress)
        #expect(server.requests.first?.method == "GET")
    }

    @Test func refusesInvalidRequestsWithoutSendingThem() async throws {
        let server = try LoopbackHTTPServer(script: [])
        do {
            _ = try await Fixture.client(server).createPayment(
                callSID: Fixture.call,
                options: PaymentSessionOptions(
                    chargeAmount: "-1", currency: "dollars", timeout: 601, bankAccountType: .consumerChecking),
                idempotencyKey: "", statusCallback: "/relative")
            Issue.record("no error")
        } catch let error as TwilioError {
            guard case .invalidRequest(let problems) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(problems.count == 6)
        }
        #expect(server.requests.isEmpty)
    }

    @Test func makesDistinctIdempotencyKeys() {
        let keys = Set((0..<1000).map { _ in TwilioPaymentsClient.makeIdempotencyKey() })
        #expect(keys.count == 1000 && keys.allSatisfy { $0.count == 32 })
    }
}

@Suite struct RetryPolicyTests {
    @Test func delaysGrowAndStayCapped() {
        let policy = RetryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...10 {
            let ceiling = min(Duration.seconds(1), .milliseconds(100) * (1 << (attempt - 1)))
            for _ in 0..<50 {
                let delay = policy.delay(afterAttempt: attempt, using: &generator)
                #expect(delay >= .zero && delay <= ceiling)
            }
        }
        #expect(policy.delay(afterAttempt: 1, retryAfterSeconds: 30, using: &generator) == .seconds(1))
        #expect(policy.delay(afterAttempt: 1, retryAfterSeconds: 0.5, using: &generator) == .milliseconds(500))
    }

    @Test func retryAfterIsReadAsSecondsOrAsAnHTTPDate() {
        let now = Date(timeIntervalSince1970: 1_792_000_000) // Fri, 14 Oct 2026 ...
        #expect(RetryPolicy.retryAfterSeconds("120", now: now) == 120)
        #expect(RetryPolicy.retryAfterSeconds(" 1.5 ", now: now) == 1.5)
        let inNinety = HTTPDate.string(from: now.addingTimeInterval(90))
        #expect(RetryPolicy.retryAfterSeconds(inNinety, now: now) == 90, "\(inNinety)")
        #expect(
            RetryPolicy.retryAfterSeconds(HTTPDate.string(from: now.addingTimeInterval(-5)), now: now) == 0,
            "a past date: no wait")
        #expect(RetryPolicy.retryAfterSeconds("soon", now: now) == nil)
        #expect(RetryPolicy.retryAfterSeconds("-3", now: now) == 0)
    }

    @Test func retriesOnlyWhatIsWorthIt() {
        #expect([429, 500, 502, 503, 504].allSatisfy(RetryPolicy.isRetryable(status:)))
        #expect(![400, 401, 403, 404, 409, 422, 501].contains(where: RetryPolicy.isRetryable(status:)))
    }
}

/// RFC 9110's IMF-fixdate, as `Retry-After` carries it.
enum HTTPDate {
    static func string(from date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
