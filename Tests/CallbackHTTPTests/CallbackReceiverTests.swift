import CallbackHTTP
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Synchronization
import Testing
import TwilioPayments
import PaymentsTestSupport

@Suite struct CallbackReceiverTests {
    let publicBase = "https://payments.example.ngrok.app"
    let fields = [
        ("Sid", "PK" + String(repeating: "1", count: 32)), ("Capture", "payment-card-number"),
        ("PartialResult", "true"),
        ("PaymentCardNumber", "xxxx"),
    ]

    func receiver(token: Secret? = Fixture.token, sink: RecordingSink) throws -> (CallbackReceiver, String) {
        let receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(authToken: token), sink: sink, logger: Fixture.quiet)
        receiver.setPublicBaseURL(publicBase)
        sink.allow("0123456789abcdef0123456789abcdef")
        let url = try receiver.callbackURL(secret: "0123456789abcdef0123456789abcdef")
        return (receiver, url)
    }

    /// A host's router holding only the callback routes.
    static func router(_ receiver: CallbackReceiver) -> Router<BasicRequestContext> {
        let router = Router()
        router.addRoutes(receiver.routes())
        return router
    }

    func body(_ pairs: [(String, String)]) -> ByteBuffer { ByteBuffer(string: FormEncoding.encode(pairs)) }

    func form(signature: String?) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let signature { headers[HTTPField.Name("X-Twilio-Signature")!] = signature }
        return headers
    }

    @Test func acceptsASignedCallbackForAnIssuedSecret() async throws {
        let sink = RecordingSink()
        let (receiver, url) = try receiver(sink: sink)
        #expect(url == publicBase + "/twilio/payment-callbacks/0123456789abcdef0123456789abcdef")
        let signature = WebhookSignature(authToken: Fixture.token).sign(url: url, parameters: fields)
        let path = String(url.dropFirst(publicBase.count))
        try await Application(router: Self.router(receiver)).test(.router) { client in
            try await client.execute(uri: path, method: .post, headers: form(signature: signature), body: body(fields))
            { response in
                #expect(response.status == .noContent)
            }
        }
        #expect(sink.count == 1)
        #expect(sink.received.withLock { $0[0].1.capture } == .cardNumber)
    }

    @Test func withoutATokenACallbackThatWouldFinishTheSessionMustNameIt() async throws {
        let sink = RecordingSink()
        let (receiver, url) = try receiver(token: nil, sink: sink)
        let path = String(url.dropFirst(publicBase.count))
        let identity = [
            ("AccountSid", Fixture.credentials.accountSID.rawValue),
            ("CallSid", "CA" + String(repeating: "2", count: 32)),
            ("Sid", "PK" + String(repeating: "1", count: 32)),
        ]
        try await Application(router: Self.router(receiver)).test(.router) { client in
            for forged in [
                [("Result", "success"), ("PaymentConfirmationCode", "forged")],
                identity.dropLast() + [("Result", "success")],
            ] {
                try await client.execute(uri: path, method: .post, headers: form(signature: nil), body: body(forged)) {
                    response in
                    #expect(response.status == .badRequest)
                    #expect(
                        String(buffer: response.body).contains("must carry AccountSid, CallSid and Sid"),
                        "the answer says why")
                }
            }
            #expect(sink.count == 0, "nothing refused is delivered")
            // On a secret no session has, the same callback is simply unknown: a stranger learns
            // nothing and writes nothing to the log.
            let stranger = String(path.dropLast(4)) + "ffff"
            try await client.execute(
                uri: stranger, method: .post, headers: form(signature: nil), body: body([("Result", "success")])
            ) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(
                uri: path, method: .post, headers: form(signature: nil), body: body(identity + [("Result", "success")])
            ) { response in
                #expect(response.status == .noContent)
            }
        }
        #expect(sink.count == 1)
    }

    @Test func refusesEverythingElseAndDeliversNothing() async throws {
        let sink = RecordingSink()
        let (receiver, url) = try receiver(sink: sink)
        let signer = WebhookSignature(authToken: Fixture.token)
        let path = String(url.dropFirst(publicBase.count))
        let unknown = "/twilio/payment-callbacks/ffffffffffffffffffffffffffffffff"
        try await Application(router: Self.router(receiver)).test(.router) { client in
            // No signature, a forged one, one for other parameters, one over the local address.
            for signature in [
                nil, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", signer.sign(url: url, parameters: [("Result", "success")]),
                signer.sign(url: "http://127.0.0.1:8080" + path, parameters: fields),
            ] {
                try await client.execute(
                    uri: path, method: .post, headers: form(signature: signature), body: body(fields)
                ) { response in
                    #expect(response.status == .forbidden)
                }
            }
            let signedUnknown = signer.sign(url: publicBase + unknown, parameters: fields)
            try await client.execute(
                uri: unknown, method: .post, headers: form(signature: signedUnknown), body: body(fields)
            ) { response in
                #expect(response.status == .notFound)
            }
            for method in [HTTPRequest.Method.get, .put, .delete] {
                try await client.execute(uri: path, method: method) { response in
                    #expect(response.status == .methodNotAllowed && response.headers[.allow] == "POST")
                }
            }
            try await client.execute(
                uri: path, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{}")
            ) { response in
                #expect(response.status == .unsupportedMediaType)
            }
            let huge = [("Blob", String(repeating: "a", count: 70 * 1024))]
            try await client.execute(uri: path, method: .post, headers: form(signature: nil), body: body(huge)) {
                response in
                #expect(response.status == .contentTooLarge)
            }
            try await client.execute(
                uri: path, method: .post, headers: form(signature: nil), body: ByteBuffer(string: "Sid=%ZZ")
            ) { response in
                #expect(response.status == .badRequest)
            }
        }
        #expect(sink.count == 0, "nothing from a rejected request reaches the flow")
    }

    @Test func withoutAnAuthTokenTheSecretIsTheDefence() async throws {
        let sink = RecordingSink()
        let (receiver, url) = try receiver(token: nil, sink: sink)
        let path = String(url.dropFirst(publicBase.count))
        try await Application(router: Self.router(receiver)).test(.router) { client in
            try await client.execute(uri: path, method: .post, headers: form(signature: nil), body: body(fields)) {
                response in
                #expect(response.status == .noContent)
            }
            try await client.execute(
                uri: path.dropLast() + "0", method: .post, headers: form(signature: nil), body: body(fields)
            ) { response in
                #expect(response.status == .notFound)
            }
        }
        #expect(sink.count == 1)
        sink.forget("0123456789abcdef0123456789abcdef")
        try await Application(router: Self.router(receiver)).test(.router) { client in
            try await client.execute(uri: path, method: .post, headers: form(signature: nil), body: body(fields)) {
                response in
                #expect(response.status == .notFound)
            }
        }
    }

    /// A receiver with a recording sink, its routes served on a real loopback socket while `body`
    /// runs, its public base URL the socket's.
    func withReceiverOnASocket(_ body: (CallbackReceiver, RecordingSink, Int) async throws -> Void) async throws {
        let sink = RecordingSink()
        let receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(authToken: Fixture.token), sink: sink, logger: Fixture.quiet)
        let bound = Mutex<Int?>(nil)
        let app = Application(
            router: Self.router(receiver),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                receiver.setPublicBaseURL("http://127.0.0.1:\(port)")
                bound.withLock { $0 = port }
            }, logger: Fixture.quiet)
        try await withRunning([app]) {
            let port = try await eventually { bound.withLock { $0 } }
            try await body(receiver, sink, port)
        }
    }

    /// Its routes in a host's application on a real socket: a signed callback to the URL the
    /// receiver gives is accepted at the public base URL the host set; a forged one is not.
    @Test func itsRoutesServeARealSocket() async throws {
        try await withReceiverOnASocket { receiver, sink, port in
            #expect(port > 0 && receiver.publicBaseURL == "http://127.0.0.1:\(port)")
            sink.allow("abcdefabcdefabcdefabcdefabcdefab")
            let url = try receiver.callbackURL(secret: "abcdefabcdefabcdefabcdefabcdefab")
            let signature = WebhookSignature(authToken: Fixture.token).sign(url: url, parameters: fields)
            #expect(try await post(url, fields: fields, signature: signature) == 204)
            #expect(try await post(url, fields: fields, signature: "bad") == 403)
            #expect(sink.count == 1)
        }
    }

    /// The 64 KiB body limit over a real socket: a signed callback of exactly 64 KiB is
    /// accepted, one byte more is refused with 413 and delivers nothing.
    @Test func theBodyLimitHoldsOnARealSocket() async throws {
        try await withReceiverOnASocket { receiver, sink, _ in
            sink.allow("abcdefabcdefabcdefabcdefabcdefab")
            let url = try receiver.callbackURL(secret: "abcdefabcdefabcdefabcdefabcdefab")
            /// The callback's fields padded so that the form is `size` bytes long, signed.
            func padded(to size: Int) -> ([(String, String)], String) {
                let base = FormEncoding.encode(fields + [("Padding", "")]).utf8.count
                let all = fields + [("Padding", String(repeating: "p", count: size - base))]
                #expect(FormEncoding.encode(all).utf8.count == size)
                return (all, WebhookSignature(authToken: Fixture.token).sign(url: url, parameters: all))
            }
            let (whole, wholeSignature) = padded(to: 64 * 1024)
            #expect(try await post(url, fields: whole, signature: wholeSignature) == 204)
            let (over, overSignature) = padded(to: 64 * 1024 + 1)
            #expect(try await post(url, fields: over, signature: overSignature) == 413)
            #expect(sink.count == 1, "only the callback within the limit was delivered")
        }
    }
}
