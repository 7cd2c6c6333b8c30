import Foundation
import TwilioPayments

/// Posts a form to `url` over real HTTP with an optional `X-Twilio-Signature`, as Twilio (or a
/// forger) would, and returns the status.
public func post(
    _ url: String, fields: [(String, String)], signature: String?,
    contentType: String = "application/x-www-form-urlencoded"
) async throws -> Int {
    var headers = [("Content-Type", contentType)]
    if let signature { headers.append(("X-Twilio-Signature", signature)) }
    guard let target = URL(string: url) else { throw URLError(.badURL) }
    let request = TwilioPayments.HTTPRequest(
        method: "POST", url: target, headers: headers,
        body: Data(FormEncoding.encode(fields).utf8), timeout: .seconds(5))
    return try await URLSessionTransport().send(request).status
}
