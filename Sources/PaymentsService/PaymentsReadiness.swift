import Foundation

/// Whether a system can take a payment now, check by check: what `/readyz` answers.
public struct PaymentsReadiness: Sendable, Equatable {
    /// One check: its name, and why it fails (`nil` when it passes). Reasons are fixed
    /// sentences that name no host, address or secret: the probe is unauthenticated.
    public struct Check: Sendable, Equatable {
        public var name: String
        public var failure: String?

        public init(name: String, failure: String?) {
            self.name = name
            self.failure = failure
        }
    }

    public var checks: [Check]

    public init(checks: [Check]) {
        self.checks = checks
    }

    /// Every check passes.
    public var isReady: Bool { checks.allSatisfy { $0.failure == nil } }

    /// `{"ready": …, "checks": {"name": "ok" | reason, …}}`, keys in a fixed order.
    public var json: String {
        let entries = checks.map { check in
            "\(Self.quoted(check.name)):\(Self.quoted(check.failure ?? "ok"))"
        }
        return "{\"ready\":\(isReady),\"checks\":{\(entries.joined(separator: ","))}}\n"
    }

    private static func quoted(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
