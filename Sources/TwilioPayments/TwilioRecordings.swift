/// The operations of Twilio's call Recordings API that keep card entry out of a call's
/// recordings (`/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings…`): find the call's
/// recordings that are running, pause each while the caller types, resume it afterwards.
/// ``TwilioPaymentsClient`` is the real one.
///
/// An update sets a status, so sending it again (a retry, another replica) changes nothing more:
/// the API takes no idempotency key, and needs none.
public protocol TwilioRecordingsAPI: Sendable {
    /// The call's recordings (`GET …/Calls/{CallSid}/Recordings.json`, its first page: 50, more than a call has).
    func recordings(ofCall callSID: CallSID) async throws(TwilioError) -> [RecordingResource]
    /// Pauses or resumes one recording (`POST …/Recordings/{Sid}.json`, `Status=paused` with
    /// `PauseBehavior=skip`, or `Status=in-progress`).
    func updateRecording(
        _ recordingSID: RecordingSID, ofCall callSID: CallSID, _ update: RecordingUpdate
    ) async throws(TwilioError) -> RecordingResource
}

/// What to do to a recording.
public enum RecordingUpdate: String, Sendable, Equatable {
    /// `Status=paused`, `PauseBehavior=skip`: nothing is recorded meanwhile (`silence` would keep
    /// the pause's length as silence; `skip` keeps nothing).
    case pause
    /// `Status=in-progress`.
    case resume

    var formFields: [(String, String)] {
        switch self {
        case .pause: return [("Status", "paused"), ("PauseBehavior", "skip")]
        case .resume: return [("Status", "in-progress")]
        }
    }
}

/// A call recording as Twilio describes it: its SID, and its status (`in-progress`, `paused`,
/// `stopped`, `processing`, `completed`, `absent`; an unknown one is kept as sent).
public struct RecordingResource: Sendable, Equatable {
    public var sid: RecordingSID
    public var callSID: CallSID?
    public var status: String

    public init(sid: RecordingSID, callSID: CallSID?, status: String) {
        self.sid = sid
        self.callSID = callSID
        self.status = status
    }

    /// Whether it records now: the one status a pause applies to.
    public var isRecording: Bool { status == "in-progress" }

    struct Wire: Decodable {
        var sid: String?
        var call_sid: String?
        var status: String?
    }

    struct Page: Decodable {
        var recordings: [Wire]?
    }

    init(_ wire: Wire, status code: Int) throws(TwilioError) {
        guard let text = wire.sid, let sid = RecordingSID(text) else {
            throw .invalidResponse(status: code, detail: "a recording resource has no valid sid")
        }
        self.init(sid: sid, callSID: wire.call_sid.flatMap(CallSID.init), status: wire.status ?? "")
    }
}

extension TwilioPaymentsClient: TwilioRecordingsAPI {
    public func recordings(ofCall callSID: CallSID) async throws(TwilioError) -> [RecordingResource] {
        let response = try await perform(
            "list_recordings", method: "GET", path: "Calls/\(callSID)/Recordings.json", form: nil)
        var recordings: [RecordingResource] = []
        for wire in try decode(RecordingResource.Page.self, from: response).recordings ?? [] {
            recordings.append(try RecordingResource(wire, status: response.status))
        }
        return recordings
    }

    public func updateRecording(
        _ recordingSID: RecordingSID, ofCall callSID: CallSID, _ update: RecordingUpdate
    ) async throws(TwilioError) -> RecordingResource {
        let response = try await perform(
            "update_recording", method: "POST", path: "Calls/\(callSID)/Recordings/\(recordingSID).json",
            form: update.formFields)
        return try RecordingResource(try decode(RecordingResource.Wire.self, from: response), status: response.status)
    }
}
