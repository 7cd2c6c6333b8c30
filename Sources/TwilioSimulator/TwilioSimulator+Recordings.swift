import Foundation
import Hummingbird
public import TwilioPayments

/// One recording of a simulated call, and what it heard.
struct SimulatedRecording {
    var sid: RecordingSID
    var status: String
    var created: Date
    var updated: Date
    /// Keypresses the caller made while it was `in-progress`: what PCI keeps out of recordings.
    var keypressesHeard = 0
}

extension TwilioSimulator {
    /// A recording of a simulated call, as a test sees it.
    public struct RecordingState: Sendable, Equatable {
        public var sid: RecordingSID
        /// `in-progress`, `paused`, `stopped` or `completed` (once the call ended).
        public var status: String
        /// How many of the caller's keypresses it heard (made while it was `in-progress`).
        public var keypressesHeard: Int
        /// How many times its status was changed through the API.
        public var updates: Int
    }

    /// Starts a recording on `callSID` (placing the call if unknown), `in-progress` from now.
    @discardableResult
    public func startRecording(on callSID: CallSID) -> RecordingSID {
        state.withLock { state in
            if state.calls[callSID] == nil { state.calls[callSID] = Call(sid: callSID, script: .default) }
            return addRecording(to: callSID, in: &state)
        }
    }

    /// The recordings of `callSID`, oldest first.
    public func recordings(on callSID: CallSID) -> [RecordingState] {
        state.withLock { state in
            (state.calls[callSID]?.recordings ?? []).map { recording in
                RecordingState(
                    sid: recording.sid, status: recording.status, keypressesHeard: recording.keypressesHeard,
                    updates: state.recordingUpdates[recording.sid] ?? 0)
            }
        }
    }

    /// Refuses `count` recording updates (`nil`: every one, until `failRecordingUpdates(0)`)
    /// once `passing` more have been applied, as Twilio refuses one it cannot apply: HTTP 400,
    /// error 21220.
    public func failRecordingUpdates(_ count: Int?, after passing: Int = 0) {
        state.withLock { state in
            state.failingRecordingUpdates = count.map { max($0, 0) } ?? Int.max
            state.recordingUpdatesBeforeFailing = max(passing, 0)
        }
    }

    /// A new call, recorded from its start when ``Configuration/recordsCalls`` says so.
    func makeCall(_ sid: CallSID, _ script: CallerScript, in state: inout State) -> Call {
        state.calls[sid] = Call(sid: sid, script: script)
        if configuration.recordsCalls { _ = addRecording(to: sid, in: &state) }
        return state.calls[sid]!
    }

    /// The call, placed now if it is unknown and unknown calls are accepted (as a create does:
    /// a recording is listed before the payment is created); 20404 otherwise.
    private func placedCall(_ callSID: CallSID, in state: inout State) throws -> Call {
        if state.calls[callSID] == nil, configuration.acceptsUnknownCalls {
            state.calls[callSID] = makeCall(callSID, .default, in: &state)
        }
        guard let call = state.calls[callSID] else {
            throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
        }
        return call
    }

    private func addRecording(to callSID: CallSID, in state: inout State) -> RecordingSID {
        state.nextNumber += 1
        let sid = makeSID(RecordingSID.self, state.nextNumber)
        let now = Date()
        state.calls[callSID]?.recordings.append(
            SimulatedRecording(sid: sid, status: "in-progress", created: now, updated: now))
        return sid
    }

    /// A keypress on `callSID`: every recording running hears it.
    func keypressHeard(on callSID: CallSID) {
        state.withLock { state in
            guard let recordings = state.calls[callSID]?.recordings else { return }
            for index in recordings.indices where recordings[index].status == "in-progress" {
                state.calls[callSID]?.recordings[index].keypressesHeard += 1
            }
        }
    }

    /// The call is over: its recordings that were still open are complete.
    func endRecordings(of callSID: CallSID, in state: inout State) {
        guard let recordings = state.calls[callSID]?.recordings else { return }
        for index in recordings.indices where ["in-progress", "paused"].contains(recordings[index].status) {
            state.calls[callSID]?.recordings[index].status = "completed"
        }
    }

    // MARK: HTTP (Twilio's OpenAPI: ListCallRecording, FetchCallRecording, UpdateCallRecording)

    func addRecordingRoutes(to router: Router<BasicRequestContext>, base: String) {
        router.get("\(base)/:call/Recordings.json") { [self] request, context in
            try await handle(request, context) { _, account, call in
                try self.listRecordings(account: account, call: call)
            }
        }
        router.get("\(base)/:call/Recordings/{recording}.json") { [self] request, context in
            try await handle(request, context) { _, account, call in
                let (_, body) = try self.recording(
                    context.parameters.get("recording") ?? "", account: account, call: call)
                return (.ok, body)
            }
        }
        router.post("\(base)/:call/Recordings/{recording}.json") { [self] request, context in
            try await handle(request, context) { form, account, call in
                try self.updateRecording(
                    context.parameters.get("recording") ?? "", form: form, account: account, call: call)
            }
        }
    }

    private func listRecordings(account: String, call: String) throws -> (HTTPResponse.Status, String) {
        let callSID = CallSID(call)!
        let recordings = try state.withLock { state in try placedCall(callSID, in: &state).recordings }
        let uri = "/2010-04-01/Accounts/\(account)/Calls/\(call)/Recordings.json"
        let page: [String: Any] = [
            "recordings": recordings.map { recordingObject($0, account: account, call: callSID) },
            "page": 0, "page_size": 50, "start": 0, "end": max(0, recordings.count - 1),
            "first_page_uri": uri + "?PageSize=50&Page=0", "next_page_uri": NSNull(), "previous_page_uri": NSNull(),
            "uri": uri + "?PageSize=50&Page=0",
        ]
        return (.ok, Self.jsonString(page))
    }

    /// The recording `text` names on the call (`Twilio.CURRENT`: the newest that is open).
    private func recording(
        _ text: String, account: String, call: String
    ) throws -> (Int, String) {
        let callSID = CallSID(call)!
        return try state.withLock { state -> (Int, String) in
            let recordings = try placedCall(callSID, in: &state).recordings
            let index =
                text == "Twilio.CURRENT"
                ? recordings.lastIndex { ["in-progress", "paused"].contains($0.status) }
                : recordings.firstIndex { $0.sid.rawValue == text }
            guard let index else {
                throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
            }
            return (index, Self.jsonString(recordingObject(recordings[index], account: account, call: callSID)))
        }
    }

    private func updateRecording(
        _ text: String, form pairs: [(String, String)], account: String, call: String
    ) throws -> (HTTPResponse.Status, String) {
        let form = Dictionary(pairs, uniquingKeysWith: { _, last in last })
        if let unknown = form.keys.first(where: { !["Status", "PauseBehavior"].contains($0) }) {
            throw Failure(status: .badRequest, code: 20001, message: "Unknown parameter \(unknown)")
        }
        guard let status = form["Status"] else {
            throw Failure(status: .badRequest, code: 20001, message: "Missing required parameter Status")
        }
        guard ["in-progress", "paused", "stopped"].contains(status) else {
            throw Failure(status: .badRequest, code: 20001, message: "Invalid value \(status) for Status")
        }
        if let behavior = form["PauseBehavior"], !["skip", "silence"].contains(behavior) {
            throw Failure(status: .badRequest, code: 20001, message: "Invalid value \(behavior) for PauseBehavior")
        }
        let callSID = CallSID(call)!
        let (index, _) = try recording(text, account: account, call: call)
        let updated = try state.withLock { state -> SimulatedRecording in
            if state.failingRecordingUpdates > 0, state.recordingUpdatesBeforeFailing > 0 {
                state.recordingUpdatesBeforeFailing -= 1
            } else if state.failingRecordingUpdates > 0 {
                if state.failingRecordingUpdates != Int.max { state.failingRecordingUpdates -= 1 }
                throw Failure(
                    status: .badRequest, code: 21220, message: "Recording is not in a state that can be updated")
            }
            guard var recording = state.calls[callSID]?.recordings[index] else {
                throw Failure(status: .notFound, code: 20404, message: "The requested resource was not found")
            }
            // Only an open recording changes; setting the status it has is no change (the
            // reading an update taken twice, by a retry or a second replica, needs).
            guard ["in-progress", "paused"].contains(recording.status) else {
                throw Failure(
                    status: .badRequest, code: 21220, message: "Recording is not in a state that can be updated")
            }
            recording.status = status
            recording.updated = Date()
            state.calls[callSID]?.recordings[index] = recording
            state.recordingUpdates[recording.sid, default: 0] += 1
            return recording
        }
        return (.ok, Self.jsonString(recordingObject(updated, account: account, call: callSID)))
    }

    /// The `api.v2010.account.call.call_recording` object, with every member the schema lists.
    private func recordingObject(_ recording: SimulatedRecording, account: String, call: CallSID) -> [String: Any] {
        [
            "account_sid": account, "api_version": "2010-04-01", "call_sid": call.rawValue,
            "conference_sid": NSNull(), "channels": 2,
            "date_created": Self.rfc2822.string(from: recording.created),
            "date_updated": Self.rfc2822.string(from: recording.updated),
            "start_time": Self.rfc2822.string(from: recording.created), "price": NSNull(), "price_unit": NSNull(),
            "duration": NSNull(), "sid": recording.sid.rawValue, "source": "StartCallRecordingAPI",
            "status": recording.status, "error_code": NSNull(), "encryption_details": NSNull(), "track": "both",
            "uri": "/2010-04-01/Accounts/\(account)/Calls/\(call)/Recordings/\(recording.sid).json",
        ]
    }

    static func jsonString(_ object: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
