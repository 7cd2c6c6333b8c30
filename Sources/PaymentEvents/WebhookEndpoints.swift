import Foundation
import PaymentFlow

/// One HTTP endpoint of the voice app that receives payment events: where, signed with which
/// secret, and which event types.
///
/// Endpoints come from the environment (``WebhookEndpoints/load(environment:)``) or are built
/// by an embedding host. The URL is checked again before every delivery
/// (``WebhookTarget/check(_:allowPrivateNetworks:)``).
public struct WebhookEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// A short name for logs and errors; `default` for the one the environment variables give.
    public var name: String
    /// The URL events are posted to.
    public var url: String
    /// The key that signs every delivery (Standard Webhooks).
    public var secret: WebhookSecret
    /// The event types this endpoint receives.
    public var events: WebhookEventFilter

    public init(name: String, url: String, secret: WebhookSecret, events: WebhookEventFilter = .all) {
        self.name = name
        self.url = url
        self.secret = secret
        self.events = events
    }

    /// Whether an event of `type` (`payment.completed`, say) goes to this endpoint.
    public func accepts(_ type: String) -> Bool {
        events.accepts(type)
    }

    /// The name, the URL without its query (where a token may be), and the filter; never the secret.
    public var description: String {
        let shown = (try? ParsedTarget.parse(url).get().redacted) ?? "<invalid URL>"
        return "WebhookEndpoint(\(name), \(shown), events: \(events), secret: <redacted>)"
    }
}

/// Which event types an endpoint receives: patterns that are an exact type
/// (`payment.completed`), a prefix of whole segments followed by `.*` (`payment.item.*`: every
/// type that starts with `payment.item.`), or `*` (everything).
public struct WebhookEventFilter: Sendable, Equatable, CustomStringConvertible {
    /// The patterns, without duplicates, in the order given.
    public let patterns: [String]

    /// Every event, including types added later.
    public static let all = WebhookEventFilter(uncheckedPatterns: ["*"])

    /// A filter of `patterns`, each well formed and matching at least one of
    /// ``WebhookEndpoints/eventTypes``.
    public init(patterns: [String]) throws(WebhookEventFilterError) {
        var unique: [String] = []
        for pattern in patterns where !unique.contains(pattern) {
            guard Self.isWellFormed(pattern) else { throw .malformed(pattern: pattern) }
            guard WebhookEndpoints.eventTypes.contains(where: { Self.matches(pattern, $0) }) else {
                throw .matchesNoEvent(pattern: pattern)
            }
            unique.append(pattern)
        }
        guard !unique.isEmpty else { throw .empty }
        self.patterns = unique
    }

    private init(uncheckedPatterns: [String]) {
        patterns = uncheckedPatterns
    }

    /// Whether any pattern matches `type`.
    public func accepts(_ type: String) -> Bool {
        patterns.contains { Self.matches($0, type) }
    }

    public var description: String { patterns.joined(separator: ",") }

    static func matches(_ pattern: String, _ type: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix(".*") { return type.hasPrefix(pattern.dropLast()) && type.count > pattern.count - 1 }
        return pattern == type
    }

    /// `*`, or segments of `[a-z0-9_]` joined by `.`, the last of which may be `*`.
    static func isWellFormed(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        let segments = pattern.split(separator: ".", omittingEmptySubsequences: false)
        for (index, segment) in segments.enumerated() {
            if segment == "*" && index == segments.count - 1 && index > 0 { continue }
            guard !segment.isEmpty,
                segment.utf8.allSatisfy({ (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5f })
            else {
                return false
            }
        }
        return true
    }
}

/// Why event patterns were refused.
public enum WebhookEventFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not `*`, an event type, or a type prefix followed by `.*`.
    case malformed(pattern: String)
    /// Well formed, but no known event type matches it (a typo, most likely).
    case matchesNoEvent(pattern: String)
    /// No pattern at all: the endpoint would receive nothing.
    case empty

    public var description: String {
        let known = WebhookEndpoints.eventTypes.joined(separator: ", ")
        switch self {
        case .malformed(let pattern):
            return
                "the event pattern \"\(pattern)\" is not an event type, a prefix followed by .* (payment.item.*), or *"
        case .matchesNoEvent(let pattern):
            return "the event pattern \"\(pattern)\" matches no event type; the types are \(known)"
        case .empty:
            return "no event pattern is given; leave the events out to receive every event, or name some of \(known)"
        }
    }
}

/// Where and how payment events are delivered, read from the environment once at start-up.
public struct WebhookSettings: Sendable, Equatable {
    /// The endpoints; empty when none is configured (nothing is delivered).
    public var endpoints: [WebhookEndpoint]
    /// Whether endpoints may be on private, link-local and other non-public addresses
    /// (`AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE`).
    public var allowPrivateNetworks: Bool
    /// How long an event's delivery is retried before it is given up
    /// (`AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS`).
    public var maximumAge: Duration

    /// A day.
    public static let defaultMaximumAge: Duration = .seconds(86_400)
    /// The range ``maximumAge`` may be configured in, in seconds: a minute to a week.
    public static let maximumAgeRange: ClosedRange<Int> = 60...604_800
    /// The first wait before a failed delivery is tried again (doubled each time, with jitter,
    /// up to an hour): `AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS`, 10–60000, default 2000.
    public var firstRetryDelay: Duration = .seconds(2)
    /// With PostgreSQL, how long a replica holds a message it is delivering before another may
    /// take it again (how long a dead replica's delivery waits): `AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS`,
    /// 20–3600, default 60. Longer than one attempt (15 s) so that a live replica is never doubled.
    public var lease: Duration = .seconds(60)

    public init(
        endpoints: [WebhookEndpoint] = [], allowPrivateNetworks: Bool = false, maximumAge: Duration = defaultMaximumAge
    ) {
        self.endpoints = endpoints
        self.allowPrivateNetworks = allowPrivateNetworks
        self.maximumAge = maximumAge
    }
}

/// Reads the webhook configuration from the settings the host gives by name:
///
/// - `AGENT_PAYMENTS_WEBHOOK_URL` and `AGENT_PAYMENTS_WEBHOOK_SECRET` (and optionally
///   `AGENT_PAYMENTS_WEBHOOK_EVENTS`, comma-separated patterns): one endpoint, named `default`.
/// - `AGENT_PAYMENTS_WEBHOOKS_FILE`: a JSON array of
///   `{"name": …, "url": …, "secret": …, "events": […]}` (`events` optional), for several.
///   Both forms may be used together; names are unique.
/// - `AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE` (`true`/`false`),
///   `AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS` (60–604800, default 86400),
///   `AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS` (10–60000, default 2000) and
///   `AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS` (20–3600, default 60; with PostgreSQL).
///
/// URLs are checked here without DNS (``WebhookTarget/checkSyntax(_:allowPrivateNetworks:)``);
/// their names are resolved and checked before each delivery.
public enum WebhookEndpoints {
    /// Every event type there is, in the order a payment meets them.
    public static let eventTypes: [String] = PaymentNoticeType.allCases.map(\.rawValue)

    /// The name of the endpoint the `AGENT_PAYMENTS_WEBHOOK_*` variables give.
    public static let defaultName = "default"

    /// The webhook settings the named values give; `setting` answers a variable's value as the
    /// host's configuration holds it (`nil` when unset). Nothing is read from the environment here.
    public static func load(
        _ setting: (String) -> String?
    ) throws(WebhookConfigurationError) -> WebhookSettings {
        try load(setting) { path in try Data(contentsOf: URL(fileURLWithPath: path)) }
    }

    static func load(
        _ setting: (String) -> String?, readFile: (String) throws -> Data
    ) throws(WebhookConfigurationError) -> WebhookSettings {
        func value(_ name: String) -> String? {
            guard let text = setting(name)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
                return nil
            }
            return text
        }
        var settings = WebhookSettings()
        if let text = value("AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE") {
            switch text.lowercased() {
            case "1", "true", "yes": settings.allowPrivateNetworks = true
            case "0", "false", "no": settings.allowPrivateNetworks = false
            default:
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE", value: text, expected: "true or false")
            }
        }
        if let text = value("AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS") {
            guard let seconds = Int(text), WebhookSettings.maximumAgeRange.contains(seconds) else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS", value: text,
                    expected: "whole seconds from 60 to 604800 (how long an event's delivery is retried; default 86400)"
                )
            }
            settings.maximumAge = .seconds(seconds)
        }
        if let text = value("AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS") {
            guard let milliseconds = Int(text), (10...60_000).contains(milliseconds) else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS", value: text,
                    expected:
                        "milliseconds between 10 and 60000 (the first wait before a failed delivery is tried again; default 2000)"
                )
            }
            settings.firstRetryDelay = .milliseconds(milliseconds)
        }

        if let text = value("AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS") {
            guard let seconds = Int(text), (20...3600).contains(seconds) else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS", value: text,
                    expected:
                        "whole seconds from 20 to 3600 (how long a replica holds a delivery before another may retry it; default 60)"
                )
            }
            settings.lease = .seconds(seconds)
        }

        let url = value("AGENT_PAYMENTS_WEBHOOK_URL"), secret = value("AGENT_PAYMENTS_WEBHOOK_SECRET")
        let events = value("AGENT_PAYMENTS_WEBHOOK_EVENTS")
        switch (url, secret) {
        case (let url?, let secret?):
            let source = "AGENT_PAYMENTS_WEBHOOK_URL"
            let filter: WebhookEventFilter
            if let events {
                do {
                    filter = try WebhookEventFilter(
                        patterns: events.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                            .filter { !$0.isEmpty })
                } catch {
                    throw .invalidEvents(source: "AGENT_PAYMENTS_WEBHOOK_EVENTS", error)
                }
            } else {
                filter = .all
            }
            settings.endpoints.append(
                try endpoint(
                    name: defaultName, url: url, secret: secret, events: filter, source: source,
                    secretSource: "AGENT_PAYMENTS_WEBHOOK_SECRET", allowPrivate: settings.allowPrivateNetworks))
        case (_?, nil):
            throw .missingVariable("AGENT_PAYMENTS_WEBHOOK_SECRET", because: "AGENT_PAYMENTS_WEBHOOK_URL is set")
        case (nil, _?):
            throw .missingVariable("AGENT_PAYMENTS_WEBHOOK_URL", because: "AGENT_PAYMENTS_WEBHOOK_SECRET is set")
        case (nil, nil):
            if events != nil {
                throw .missingVariable("AGENT_PAYMENTS_WEBHOOK_URL", because: "AGENT_PAYMENTS_WEBHOOK_EVENTS is set")
            }
        }

        if let path = value("AGENT_PAYMENTS_WEBHOOKS_FILE") {
            let data: Data
            do {
                data = try readFile(path)
            } catch {
                throw .unreadableFile(path: path, reason: (error as NSError).localizedDescription)
            }
            for endpoint in try fileEndpoints(data, path: path, allowPrivate: settings.allowPrivateNetworks) {
                guard !settings.endpoints.contains(where: { $0.name == endpoint.name }) else {
                    throw .duplicateName(endpoint.name)
                }
                settings.endpoints.append(endpoint)
            }
        }
        return settings
    }

    private static let fileKeys: Set<String> = ["name", "url", "secret", "events"]

    /// The endpoints of a webhooks file.
    static func fileEndpoints(
        _ data: Data, path: String, allowPrivate: Bool
    ) throws(WebhookConfigurationError) -> [WebhookEndpoint] {
        func malformed(_ reason: String) -> WebhookConfigurationError { .malformedFile(path: path, reason: reason) }
        guard let json = try? JSONSerialization.jsonObject(with: data), let entries = json as? [Any] else {
            throw malformed("it is not a JSON array of endpoints")
        }
        guard !entries.isEmpty else { throw malformed("it holds no endpoint") }
        var endpoints: [WebhookEndpoint] = []
        for (index, element) in entries.enumerated() {
            let position = "endpoint \(index + 1)"
            guard let entry = element as? [String: Any] else { throw malformed("\(position) is not a JSON object") }
            if let unknown = entry.keys.sorted().first(where: { !fileKeys.contains($0) }) {
                throw malformed(
                    "\(position) has the unknown key \"\(unknown)\" (the keys are name, url, secret and events)")
            }
            func string(_ key: String) throws(WebhookConfigurationError) -> String {
                guard let value = entry[key] else { throw malformed("\(position) has no \"\(key)\"") }
                guard let text = value as? String, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    throw malformed("\(position)'s \"\(key)\" is not a non-empty string")
                }
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let name = try string("name")
            guard isValidName(name) else {
                throw malformed("\(position)'s name \"\(name)\" is not 1 to 64 letters, digits, '-', '_' or '.'")
            }
            let url = try string("url")
            let secret = try string("secret")
            var filter = WebhookEventFilter.all
            if let events = entry["events"] {
                guard let patterns = events as? [Any], let strings = patterns as? [String] else {
                    throw malformed("\(position)'s \"events\" is not an array of strings")
                }
                do {
                    filter = try WebhookEventFilter(patterns: strings.map { $0.trimmingCharacters(in: .whitespaces) })
                } catch {
                    throw .invalidEvents(source: "endpoint \"\(name)\" in \(path)", error)
                }
            }
            let source = "endpoint \"\(name)\" in \(path)"
            let made = try endpoint(
                name: name, url: url, secret: secret, events: filter, source: source, secretSource: source,
                allowPrivate: allowPrivate)
            guard !endpoints.contains(where: { $0.name == name }) else { throw .duplicateName(name) }
            endpoints.append(made)
        }
        return endpoints
    }

    private static func endpoint(
        name: String, url: String, secret: String, events: WebhookEventFilter, source: String,
        secretSource: String, allowPrivate: Bool
    ) throws(WebhookConfigurationError) -> WebhookEndpoint {
        let parsedSecret: WebhookSecret
        do {
            parsedSecret = try WebhookSecret(parsing: secret)
        } catch {
            throw .invalidSecret(source: secretSource, error)
        }
        if case .failure(let error) = WebhookTarget.checkSyntax(url, allowPrivateNetworks: allowPrivate) {
            throw .invalidURL(source: source, error)
        }
        return WebhookEndpoint(name: name, url: url, secret: parsedSecret, events: events)
    }

    static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || (0x30...0x39).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
    }
}

/// Why the webhook configuration was refused: cases to switch on, each with a sentence that
/// names the variable or file entry to fix. No case carries a secret.
public enum WebhookConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A variable the others need is not set; `because` says which one needs it.
    case missingVariable(String, because: String)
    /// A variable's value is not one it can take; `expected` says what it can.
    case invalidValue(variable: String, value: String, expected: String)
    /// The secret of `source` (a variable, or an endpoint of the file) cannot be used.
    case invalidSecret(source: String, WebhookSecretError)
    /// The URL of `source` may not receive webhooks.
    case invalidURL(source: String, WebhookTargetError)
    /// The event patterns of `source` cannot be used.
    case invalidEvents(source: String, WebhookEventFilterError)
    /// `AGENT_PAYMENTS_WEBHOOKS_FILE` cannot be read.
    case unreadableFile(path: String, reason: String)
    /// `AGENT_PAYMENTS_WEBHOOKS_FILE` is not what it should be; `reason` says where and how.
    case malformedFile(path: String, reason: String)
    /// Two endpoints have this name (the environment variables' endpoint is `default`).
    case duplicateName(String)

    public var description: String {
        switch self {
        case .missingVariable(let variable, let because):
            return "\(variable) is not set, but \(because): set both (or neither, to send no webhooks)"
        case .invalidValue(let variable, let value, let expected):
            return "\(variable) must be \(expected), got \"\(value)\""
        case .invalidSecret(let source, let error):
            return "\(source): \(error)"
        case .invalidURL(let source, let error):
            return "\(source): \(error)"
        case .invalidEvents(let source, let error):
            return "\(source): \(error)"
        case .unreadableFile(let path, let reason):
            return "AGENT_PAYMENTS_WEBHOOKS_FILE \(path) cannot be read: \(reason)"
        case .malformedFile(let path, let reason):
            return """
                AGENT_PAYMENTS_WEBHOOKS_FILE \(path): \(reason); it must be a JSON array of \
                {"name": …, "url": …, "secret": …, "events": […]} objects
                """
        case .duplicateName(let name):
            return """
                two webhook endpoints are named "\(name)"; give each a name of its own (the one \
                AGENT_PAYMENTS_WEBHOOK_URL gives is "\(WebhookEndpoints.defaultName)")
                """
        }
    }
}
