import Foundation
import Testing
@testable import TwilioPayments

/// The call Recordings API (issue 29): what the client sends is in Twilio's own OpenAPI
/// description, and it reads the answers that description gives as examples.
@Suite(.serialized) struct RecordingsClientTests {
    static let spec = "twilio-recordings-openapi.json"
    static let list = "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json"
    static let one = "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{Sid}.json"

    private func object(_ value: Any?, _ what: String) throws -> [String: Any] {
        try #require(value as? [String: Any], "the recordings OpenAPI fixture has no object at \(what)")
    }

    /// `paths[path][method]` of the fixture.
    private func operation(_ path: String, _ method: String) throws -> [String: Any] {
        let paths = try object(try Fixture.openAPI(Self.spec)["paths"], "paths")
        return try object(try object(paths[path], path)[method], "\(path) \(method)")
    }

    /// The example answer `name` of an operation's 200 response, as JSON text.
    private func example(_ path: String, _ method: String, _ name: String) throws -> String {
        let content = try object(
            try object(try object(try operation(path, method)["responses"], "responses")["200"], "200")["content"],
            "content")
        let examples = try object(try object(content["application/json"], "json")["examples"], "examples")
        let value = try object(examples[name], name)["value"]
        return String(decoding: try JSONSerialization.data(withJSONObject: value as Any), as: UTF8.self)
    }

    @Test func listsTheCallsRecordingsFromTwiliosOwnExample() async throws {
        let body = try example(Self.list, "get", "readFull")
        let server = try LoopbackHTTPServer(script: [.respond(status: 200, body: body)])
        let recordings = try await Fixture.client(server).recordings(ofCall: Fixture.call)
        let request = try #require(server.requests.first)
        #expect(request.method == "GET")
        #expect(request.path == "/2010-04-01/Accounts/\(Fixture.account)/Calls/\(Fixture.call)/Recordings.json")
        #expect(recordings.count == 1 && recordings.first?.sid.rawValue == "RE" + String(repeating: "a", count: 32))
        #expect(recordings.first?.status == "completed" && recordings.first?.isRecording == false)
    }

    @Test(arguments: [RecordingUpdate.pause, .resume])
    func pausesAndResumesWithOnlyWhatTheSpecTakes(update: RecordingUpdate) async throws {
        let body = try example(Self.one, "post", "update")
        let server = try LoopbackHTTPServer(script: [.respond(status: 200, body: body)])
        let sid = RecordingSID(validated: "RE" + String(repeating: "b", count: 32))
        let answer = try await Fixture.client(server).updateRecording(sid, ofCall: Fixture.call, update)
        #expect(answer.status == "paused", "Twilio's example answer")
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/2010-04-01/Accounts/\(Fixture.account)/Calls/\(Fixture.call)/Recordings/\(sid).json")
        #expect(
            request.form
                == (update == .pause ? ["Status": "paused", "PauseBehavior": "skip"] : ["Status": "in-progress"]))
        // Every field is in the spec's request body, its required ones sent, and the status one of its values.
        let content = try object(
            try object(try operation(Self.one, "post")["requestBody"], "requestBody")["content"], "content")
        let schema = try object(try object(content["application/x-www-form-urlencoded"], "form")["schema"], "schema")
        let properties = try object(schema["properties"], "properties")
        for name in request.form.keys { #expect(properties[name] != nil, "\(name) is not in the spec") }
        #expect(Set(schema["required"] as? [String] ?? []).isSubset(of: Set(request.form.keys)))
        let schemas = try object(
            try object(try Fixture.openAPI(Self.spec)["components"], "components")["schemas"], "schemas")
        let statuses = try #require(
            try object(schemas["call_recording_enum_status"], "status enum")["enum"] as? [String])
        #expect(statuses.contains(request.form["Status"] ?? ""))
        let behaviour = try object(properties["PauseBehavior"], "PauseBehavior")["description"] as? String ?? ""
        #expect(behaviour.contains("`skip`"), "skip is one of the documented behaviours")
    }

    @Test func aRefusedUpdateIsTwiliosErrorAndARecordingWithoutASIDIsRefused() async throws {
        let server = try LoopbackHTTPServer(script: [
            .respond(
                status: 400,
                body:
                    #"{"code": 21220, "message": "Invalid call state", "more_info": "https://www.twilio.com/docs/errors/21220", "status": 400}"#
            ),
            .respond(status: 200, body: #"{"recordings": [{"status": "in-progress"}]}"#),
        ])
        let client = try Fixture.client(server)
        await #expect {
            _ = try await client.updateRecording(
                RecordingSID(validated: "RE" + String(repeating: "c", count: 32)), ofCall: Fixture.call, .pause)
        } throws: { error in
            guard case .api(let answer) = error as? TwilioError else { return false }
            return answer.code == 21220
        }
        await #expect(throws: TwilioError.self) { _ = try await client.recordings(ofCall: Fixture.call) }
    }
}
