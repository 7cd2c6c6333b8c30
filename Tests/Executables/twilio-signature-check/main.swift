// Reads JSON lines {"token", "url", "params": [[name, value], ...], "signature"?} on stdin and
// writes {"signature": <ours>, "valid": <whether the given signature validates>} per line,
// so the interop tests can compare TwilioPayments with Twilio's own Python validator.
import Foundation
import TwilioPayments

while let line = readLine(strippingNewline: true) {
    guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
        let token = object["token"] as? String, let url = object["url"] as? String,
        let rawParams = object["params"] as? [[String]]
    else {
        FileHandle.standardError.write(Data("twilio-signature-check: malformed input line\n".utf8))
        exit(65)
    }
    let params = rawParams.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
    let signer = WebhookSignature(authToken: Secret(token))
    var answer: [String: Any] = ["signature": signer.sign(url: url, parameters: params)]
    if let signature = object["signature"] as? String {
        answer["valid"] = signer.isValid(signature: signature, url: url, parameters: params)
    }
    let data = try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}
