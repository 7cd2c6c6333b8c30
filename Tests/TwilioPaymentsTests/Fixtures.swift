import Foundation
@testable import TwilioPayments

enum Fixture {
    static let account = AccountSID(validated: "AC" + String(repeating: "a1", count: 16))
    static let apiKey = APIKeySID(validated: "SK" + String(repeating: "b2", count: 16))
    static let call = CallSID(validated: "CA" + String(repeating: "c3", count: 16))
    static let payment = PaymentSID(validated: "PK" + String(repeating: "d4", count: 16))
    static let secret = "the-api-secret-value"
    static let credentials = TwilioCredentials(accountSID: account, apiKeySID: apiKey, apiSecret: Secret(secret),
                                               authToken: Secret("the-auth-token"))
    static let callback = "https://callbacks.example.com/payments/8f14e45fceea167a5a36dedd4bea2543"

    static var paymentBody: String {
        #"{"account_sid":"\#(account)","call_sid":"\#(call)","sid":"\#(payment)","date_created":"Wed, 18 Dec 2019 20:02:01 +0000","date_updated":"Wed, 18 Dec 2019 20:02:02 +0000","uri":"/2010-04-01/Accounts/\#(account)/Calls/\#(call)/Payments/\#(payment).json"}"#
    }

    static let fastRetries = RetryPolicy(maximumAttempts: 4, initialDelay: .milliseconds(5), maximumDelay: .milliseconds(20),
                                         totalBudget: .seconds(5))

    static func client(_ server: LoopbackHTTPServer, retry: RetryPolicy = fastRetries) throws -> TwilioPaymentsClient {
        try TwilioPaymentsClient(credentials: credentials, baseURL: server.baseURL, retryPolicy: retry, requestTimeout: .seconds(5))
    }

    /// The OpenAPI reference shipped in shared/.
    static var openAPI: [String: Any] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/reference/twilio-payments-openapi.json")
        let data = try! Data(contentsOf: url.standardizedFileURL)
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
}
