import Foundation
@testable import TwilioPayments

enum Fixture {
    static let account = AccountSID(validated: "AC" + String(repeating: "a1", count: 16))
    static let apiKey = APIKeySID(validated: "SK" + String(repeating: "b2", count: 16))
    static let call = CallSID(validated: "CA" + String(repeating: "c3", count: 16))
    static let payment = PaymentSID(validated: "PK" + String(repeating: "d4", count: 16))
    static let secret = "the-api-secret-value"
    static let credentials = TwilioCredentials(
        accountSID: account, apiKeySID: apiKey, apiSecret: Secret(secret),
        authToken: Secret("the-auth-token"))
    static let callback = "https://callbacks.example.com/payments/8f14e45fceea167a5a36dedd4bea2543"

    static var paymentBody: String {
        #"{"account_sid":"\#(account)","call_sid":"\#(call)","sid":"\#(payment)","date_created":"Wed, 18 Dec 2019 20:02:01 +0000","date_updated":"Wed, 18 Dec 2019 20:02:02 +0000","uri":"/2010-04-01/Accounts/\#(account)/Calls/\#(call)/Payments/\#(payment).json"}"#
    }

    static let fastRetries = RetryPolicy(
        maximumAttempts: 4, initialDelay: .milliseconds(5), maximumDelay: .milliseconds(20),
        totalBudget: .seconds(5))

    static func client(_ server: LoopbackHTTPServer, retry: RetryPolicy = fastRetries) throws -> TwilioPaymentsClient {
        try TwilioPaymentsClient(
            credentials: credentials, baseURL: server.baseURL, retryPolicy: retry, requestTimeout: .seconds(5))
    }

    /// Twilio's OpenAPI description of the Payments endpoints (or, by `name`, of the call
    /// Recordings endpoints), kept in the repository at
    /// `Tests/Fixtures/reference/twilio/` (its SOURCE.md says where it comes from). A missing or
    /// unreadable file is a thrown error that names the path, so the test fails instead of crashing.
    static func openAPI(_ name: String = "twilio-payments-openapi.json") throws -> [String: Any] {
        let url = RepositoryFixture.url("twilio/" + name)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw RepositoryFixture.Missing(path: url.path, reason: "\(error.localizedDescription)")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RepositoryFixture.Missing(path: url.path, reason: "not a JSON object")
        }
        return object
    }
}

/// Test data kept inside the repository, under `Tests/Fixtures/reference/`.
enum RepositoryFixture {
    /// A fixture that could not be read: the path and why, for the failure message.
    struct Missing: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String {
            "test fixture \(path) could not be read (\(reason)); it belongs in the repository under Tests/Fixtures/reference/"
        }
    }

    /// The fixture at `relative` below `Tests/Fixtures/reference/`, located from this file's path.
    static func url(_ relative: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/reference").appendingPathComponent(relative).standardizedFileURL
    }
}
