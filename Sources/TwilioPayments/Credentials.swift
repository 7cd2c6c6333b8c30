/// A secret string (an API secret or Auth Token) that never shows itself: its description,
/// debug description and reflection are all `<redacted>`, so it cannot leak into a log line,
/// an error message or a crash report by accident.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The secret itself. Read it only where it must be used (an HTTP header, an HMAC key).
    public let revealed: String

    public init(_ value: String) {
        self.revealed = value
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// Everything needed to call Twilio: the account, the API key that authenticates REST
/// calls, and optionally the account's primary Auth Token, which alone can validate webhook
/// signatures (an API secret cannot).
public struct TwilioCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accountSID: AccountSID
    public var apiKeySID: APIKeySID
    public var apiSecret: Secret
    public var authToken: Secret?

    public init(accountSID: AccountSID, apiKeySID: APIKeySID, apiSecret: Secret, authToken: Secret? = nil) {
        self.accountSID = accountSID
        self.apiKeySID = apiKeySID
        self.apiSecret = apiSecret
        self.authToken = authToken
    }

    /// Validates all parts at once; an empty secret is refused.
    public init(
        accountSID: String, apiKeySID: String, apiSecret: String, authToken: String? = nil
    ) throws(CredentialsError) {
        do {
            self.accountSID = try AccountSID(validating: accountSID)
            self.apiKeySID = try APIKeySID(validating: apiKeySID)
        } catch {
            throw .invalidSID(error)
        }
        guard !apiSecret.isEmpty else { throw .emptyAPISecret }
        if let authToken, authToken.isEmpty { throw .emptyAuthToken }
        self.apiSecret = Secret(apiSecret)
        self.authToken = authToken.map(Secret.init)
    }

    public var description: String {
        "TwilioCredentials(account: \(accountSID), apiKey: \(apiKeySID), apiSecret: <redacted>, authToken: \(authToken == nil ? "none" : "<redacted>"))"
    }
}

/// Why credentials were refused: cases to switch on, each with a sentence a user can act on.
public enum CredentialsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The account or API key SID is malformed (the error says which and how).
    case invalidSID(SIDError)
    case emptyAPISecret
    case emptyAuthToken

    public var description: String {
        switch self {
        case .invalidSID(let error): return error.description
        case .emptyAPISecret: return "the API secret is empty"
        case .emptyAuthToken: return "the Auth Token is empty"
        }
    }
}
