// Webhook signature validations per second on one core, for a typical 15-field payment
// status callback (reference §4). Usage: TwilioPaymentsBenchmark [--seconds S]
import BenchmarkSupport
import Foundation
import TwilioPayments

let seconds = isSmoke ? 0.25 : Double(option("--seconds", 3))

let url = "https://payments.example.com/twilio/callbacks/8f14e45fceea167a5a36dedd4bea2543"
let parameters = typicalPaymentCallback
precondition(parameters.count == 15)
let signer = WebhookSignature(authToken: Secret("0123456789abcdef0123456789abcdef"))
let signature = signer.sign(url: url, parameters: parameters)
precondition(signer.isValid(signature: signature, url: url, parameters: parameters))

func now() -> Double { nowMilliseconds() / 1000 }

var rates: [Double] = []
for _ in 0..<5 {
    var count = 0
    var valid = 0
    let start = now()
    let end = start + seconds / 5
    while now() < end {
        for _ in 0..<1000 where signer.isValid(signature: signature, url: url, parameters: parameters) { valid += 1 }
        count += 1000
    }
    precondition(valid == count)
    rates.append(Double(count) / (now() - start))
}
rates.sort()
print("TwilioPayments webhook signature validation (15-field callback, one thread, 5 rounds)")
print("| measure | median | min | target |")
print("|---|---|---|---|")
print("| validations per second | \(Int(rates[2])) | \(Int(rates[0])) | ≥ 500000 |")
produced("validations per second", rates)
checkFigures()
