import Foundation
public import TwilioPayments

/// Gives each session its StatusCallback URL, carrying an unguessable path secret. The secret
/// itself is kept nowhere: the store holds its hash, which is how a callback finds its session.
public protocol CallbackURLProvider: Sendable {
    /// The URL Twilio should call for the session with `secret`.
    func callbackURL(secret: String) async throws -> String
}

/// Builds callback URLs as `<base>/<secret>`, for a public base URL known up front.
public struct StaticCallbackURLProvider: CallbackURLProvider {
    public let baseURL: String

    public init(baseURL: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }

    public func callbackURL(secret: String) -> String {
        "\(baseURL)/\(secret)"
    }
}

/// Where the key callback secrets are derived from comes from: replicas that share a store
/// must share it. A `Secret` is its own source; a store shared by replicas keeps one for all of
/// them (PaymentStorePostgres's database).
public protocol CallbackKeySource: Sendable {
    /// The key; an error while it cannot be had (a command needing it then fails retryably).
    func callbackKey() async throws -> Secret
}

extension Secret: CallbackKeySource {
    /// This key.
    public func callbackKey() -> Secret { self }
}

/// 128 random bits as 32 hex digits, for callback path secrets.
public enum PathSecret {
    public static func make() -> String {
        Hex.random()
    }
}
