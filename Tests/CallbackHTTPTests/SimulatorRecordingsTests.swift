import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Testing
import TwilioPayments
import TwilioSimulator

/// The simulator's call Recordings endpoints against Twilio's own OpenAPI description of them
/// (`Tests/Fixtures/reference/twilio/twilio-recordings-openapi.json`, its SOURCE.md beside it).
@Suite struct SimulatorRecordingsTests {
    let simulator: TwilioSimulator = {
        var configuration = TwilioSimulator.Configuration(credentials: Fixture.credentials, authToken: Fixture.token)
        configuration.digitPacing = .zero
        configuration.recordsCalls = true
        return TwilioSimulator(configuration: configuration, logger: Fixture.quiet)
    }()
    var account: String { Fixture.credentials.accountSID.rawValue }
    var headers: HTTPFields {
        [
            .authorization: "Basic "
                + Data("\(Fixture.credentials.apiKeySID):simulator-api-secret".utf8).base64EncodedString(),
            .contentType: "application/x-www-form-urlencoded",
        ]
    }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(String(buffer: buffer).utf8))) as? [String: Any] ?? [:]
    }

    /// The spec's `components.schemas[name]`.
    func schema(_ name: String) throws -> [String: Any] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/reference/twilio/twilio-recordings-openapi.json")
        let spec = try #require(
            try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) as? [String: Any], "\(url.path)")
        let schemas = try #require((spec["components"] as? [String: Any])?["schemas"] as? [String: Any])
        return try #require(schemas[name] as? [String: Any], "no schema \(name)")
    }

    @Test func aRecordedCallsRecordingHasEveryMemberOfTheSchemaAndPausesAndResumes() async throws {
        let call = simulator.startCall()
        let recording = try #require(simulator.recordings(on: call).first)
        let members = Set(
            try #require(try schema("api.v2010.account.call.call_recording")["properties"] as? [String: Any]).keys)
        let statuses = Set(try #require(try schema("call_recording_enum_status")["enum"] as? [String]))
        let base = "/2010-04-01/Accounts/\(account)/Calls/\(call)/Recordings"
        try await Application(router: simulator.makeRouter()).test(.router) { client in
            try await client.execute(uri: base + ".json", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                let listed = try #require((json(response.body)["recordings"] as? [[String: Any]])?.first)
                #expect(Set(listed.keys) == members, "the schema's members, no more, no fewer")
                #expect(
                    listed["sid"] as? String == recording.sid.rawValue && listed["status"] as? String == "in-progress")
                #expect(statuses.contains(listed["status"] as? String ?? ""))
            }
            func update(_ sid: String, _ pairs: [(String, String)]) async throws -> (HTTPResponse.Status, [String: Any])
            {
                let (status, body) = try await client.execute(
                    uri: base + "/\(sid).json", method: .post, headers: headers,
                    body: ByteBuffer(string: FormEncoding.encode(pairs))
                ) { response in (response.status, response.body) }
                return (status, json(body))
            }
            do {
                let (status, body) = try await update(
                    recording.sid.rawValue, [("Status", "paused"), ("PauseBehavior", "skip")])
                #expect(status == .ok && body["status"] as? String == "paused")
                #expect(Set(body.keys) == members)
            }
            // Setting the status it has is no change, and no error: a retry, or a second replica.
            do {
                let (status, body) = try await update(
                    "Twilio.CURRENT", [("Status", "paused"), ("PauseBehavior", "skip")])
                #expect(status == .ok && body["sid"] as? String == recording.sid.rawValue)
            }
            // What the spec does not take is refused, naming it.
            do {
                let (status, body) = try await update(recording.sid.rawValue, [("Status", "processing")])
                #expect(status == .badRequest && body["code"] as? Int == 20001)
            }
            do {
                let (_, body) = try await update(
                    recording.sid.rawValue, [("Status", "paused"), ("PauseBehavior", "mute")])
                #expect(body["code"] as? Int == 20001)
            }
            do {
                let (_, body) = try await update(
                    recording.sid.rawValue, [("Status", "paused"), ("IdempotencyKey", "k")])
                #expect(
                    body["code"] as? Int == 20001 && (body["message"] as? String)?.contains("IdempotencyKey") == true)
            }
            do {
                let (_, body) = try await update(recording.sid.rawValue, [("PauseBehavior", "skip")])
                #expect(body["code"] as? Int == 20001)
            }
            do {
                let (status, body) = try await update("RE" + String(repeating: "0", count: 32), [("Status", "paused")])
                #expect(status == .notFound && body["code"] as? Int == 20404)
            }
            do {
                let (status, body) = try await update(recording.sid.rawValue, [("Status", "in-progress")])
                #expect(status == .ok && body["status"] as? String == "in-progress")
            }
            // A call that ended completed its recordings: they change no more.
            simulator.hangUp(call, silently: true)
            do {
                let (status, body) = try await update(recording.sid.rawValue, [("Status", "in-progress")])
                #expect(status == .badRequest && body["code"] as? Int == 21220)
            }
        }
        let after = try #require(simulator.recordings(on: call).first)
        #expect(after.status == "completed" && after.updates == 3)
    }
}

/// The simulator playing one region's host: what is addressed to another is not found there.
@Suite struct SimulatorRegionTests {
    @Test func aRequestForAnotherHostIsNotFoundAndHostsAreCounted() async throws {
        var configuration = TwilioSimulator.Configuration(credentials: Fixture.credentials, authToken: Fixture.token)
        configuration.host = "api.sydney.au1.twilio.com"
        let simulator = TwilioSimulator(configuration: configuration, logger: Fixture.quiet)
        let call = simulator.startCall()
        let uri = "/2010-04-01/Accounts/\(Fixture.credentials.accountSID)/Calls/\(call).json"
        let auth = "Basic " + Data("\(Fixture.credentials.apiKeySID):simulator-api-secret".utf8).base64EncodedString()
        try await Application(router: simulator.makeRouter()).test(.router) { client in
            for (host, expected) in [
                ("api.sydney.au1.twilio.com", HTTPResponse.Status.ok), ("api.twilio.com", .notFound),
            ] {
                try await client.execute(
                    uri: uri, method: .get, headers: [.authorization: auth, TwilioSimulator.forwardedHost: host]
                ) { response in
                    #expect(response.status == expected, "\(host)")
                    if expected == .notFound { #expect(String(buffer: response.body).contains("20404")) }
                }
            }
        }
        #expect(simulator.requestHosts == ["api.sydney.au1.twilio.com": 1, "api.twilio.com": 1])
    }
}
