import Synchronization
import Tracing
public import Logging
public import MCPCore
import Foundation
import PaymentFlow

/// The one place that decides what text leaving the server may contain, in logs and in what
/// the agent sees (tool results, the status resource, prompts):
///
/// - every configured secret (API secret, Auth Token, ngrok token) becomes `<redacted>`;
/// - the secret path segment of a callback URL (`…/payment-callbacks/<secret>`) becomes
///   `<redacted>`;
/// - any run of 12–19 digits (a card or account number, also written with spaces or dashes,
///   in any script's decimal digits) keeps only its last four digits, and so does a longer run
///   that holds a card number (``Masking/cardNumberWindows(in:)``: 12–19 digits passing the
///   Luhn check), such as a card number written on with its expiry date;
/// - Twilio SIDs (two capital letters and 32 hex digits), amounts and dates stay as they are.
///
/// Log lines are also made single lines (``escapingControlCharacters(_:)``), so that no value
/// logged, a request header say, can start a line that reads as a log event of its own.
public struct Redactor: Sendable {
    private let secrets: [String]

    public init(secrets: [String]) {
        self.secrets = secrets.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
    }

    public func redact(_ text: String) -> String {
        var result = text
        for secret in secrets where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: "<redacted>")
        }
        if result.contains("payment-callbacks/") { result = Self.hideCallbackSecrets(result) }
        return Self.maskDigitRuns(result)
    }

    /// Every string in `value` redacted, except the values of members named in `keeping`
    /// (object keys are the server's own and stay).
    public func redact(_ value: JSONValue, keeping: Set<String> = []) -> JSONValue {
        switch value {
        case .string(let text): return .string(redact(text))
        case .array(let items): return .array(items.map { redact($0, keeping: keeping) })
        case .object(let members):
            var redacted: [String: JSONValue] = [:]
            for (key, member) in members {
                redacted[key] = keeping.contains(key) ? member : redact(member, keeping: keeping)
            }
            return .object(redacted)
        default: return value
        }
    }

    /// `…/payment-callbacks/<anything up to a delimiter>` → `…/payment-callbacks/<redacted>`.
    static func hideCallbackSecrets(_ text: String) -> String {
        let marker = "payment-callbacks/"
        var output = ""
        var rest = Substring(text)
        while let range = rest.range(of: marker) {
            output += rest[..<range.upperBound]
            rest = rest[range.upperBound...]
            let secret = rest.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
            if !secret.isEmpty { output += "<redacted>" }
            rest = rest.dropFirst(secret.count)
        }
        return output + rest
    }

    /// Whether `character` is a decimal digit of any script (`4`, `٤`, `４`).
    private static func isDigit(_ character: Character) -> Bool {
        character.wholeNumberValue.map { (0...9).contains($0) } ?? false && character.unicodeScalars.count == 1
            && character.unicodeScalars.first!.properties.numericType == .decimal
    }

    /// Whether the 34 characters at `index` are a Twilio SID (`PK` + 32 hex digits), which is
    /// an identifier, never a card number.
    private static func isSID(_ characters: [Character], at index: Int) -> Bool {
        guard index + 34 <= characters.count, characters[index].isASCII, characters[index].isUppercase,
            characters[index + 1].isASCII, characters[index + 1].isUppercase
        else { return false }
        if index > 0, characters[index - 1].isLetter || characters[index - 1].isNumber { return false }
        for offset in 2..<34 where !characters[index + offset].isHexDigit { return false }
        return index + 34 == characters.count || !(characters[index + 34].isLetter || characters[index + 34].isNumber)
    }

    static func maskDigitRuns(_ text: String) -> String {
        // Fast path: nothing to mask without a dozen digits.
        var digitCount = 0
        for character in text where isDigit(character) { digitCount += 1 }
        guard digitCount >= 12 else { return text }

        let characters = Array(text)
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var run: [Character] = []
        func flush() {
            let digits = run.filter(isDigit).count
            if (12...19).contains(digits)
                || (digits > 19
                    && !Masking.cardNumberWindows(in: run.compactMap { isDigit($0) ? $0.wholeNumberValue : nil })
                        .isEmpty)
            {
                var toMask = digits - 4
                for character in run {
                    if isDigit(character), toMask > 0 {
                        output.append("x")
                        toMask -= 1
                    } else {
                        output.append(character)
                    }
                }
            } else {
                output.append(contentsOf: run)
            }
            run.removeAll()
        }
        var index = 0
        while index < characters.count {
            if run.isEmpty, isSID(characters, at: index) {
                output.append(contentsOf: characters[index..<index + 34])
                index += 34
                continue
            }
            let character = characters[index]
            if isDigit(character) || (!run.isEmpty && (character == " " || character == "-")) {
                run.append(character)
            } else {
                // Separators that end a run are not part of it.
                var trailing: [Character] = []
                while let last = run.last, !isDigit(last) { trailing.insert(run.removeLast(), at: 0) }
                flush()
                output.append(contentsOf: trailing)
                output.append(character)
            }
            index += 1
        }
        var trailing: [Character] = []
        while let last = run.last, !isDigit(last) { trailing.insert(run.removeLast(), at: 0) }
        flush()
        output.append(contentsOf: trailing)
        return output
    }

    /// `text` with every control character written out, so that it stays one line: line feed,
    /// carriage return and tab as `\n`, `\r` and `\t`; the other C0 controls, DEL, the C1
    /// controls (which some terminals obey) and the Unicode line and paragraph separators by
    /// their code in hex (`\u{1B}` for escape). Everything else, backslashes included, is kept.
    public static func escapingControlCharacters(_ text: String) -> String {
        func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
            scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
                || scalar.value == 0x2029
        }
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var output = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                output.append(scalar)
                continue
            }
            let escaped: String
            switch scalar {
            case "\n": escaped = "\\n"
            case "\r": escaped = "\\r"
            case "\t": escaped = "\\t"
            default: escaped = "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
            output.append(contentsOf: escaped.unicodeScalars)
        }
        return String(output)
    }
}

/// Whether log messages that belong to no request may go to MCP clients now: off while a server
/// starts (its start-up lines go to standard error only), on once the host says so.
public final class LogBroadcastSwitch: Sendable {
    private let state: Mutex<Bool>

    public init(on: Bool = false) { state = Mutex(on) }

    /// From now on, messages outside requests are forwarded to legacy clients that set a level.
    public func turnOn() { state.withLock { $0 = true } }

    public var isOn: Bool { state.withLock { $0 } }
}

/// A swift-log handler that writes redacted lines to standard error and forwards them as MCP
/// log notifications (`notifications/message`) at the level each client chose: within a
/// request to that request (both eras), otherwise to every legacy client.
public struct MCPLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let server: MCPServer?
    private let redactor: Redactor
    private let broadcasts: LogBroadcastSwitch
    /// Standard error gets JSON lines instead of text lines.
    private var json = false

    /// `broadcastOutsideRequests: false` keeps messages that belong to no request off the wire:
    /// over HTTP every legacy client is someone else's, and must not hear of other calls.
    public init(
        label: String, server: MCPServer?, redactor: Redactor, level: Logger.Level = .info,
        broadcastOutsideRequests: Bool = true
    ) {
        self.init(
            label: label, server: server, redactor: redactor, level: level,
            broadcast: LogBroadcastSwitch(on: broadcastOutsideRequests))
    }

    /// Messages that belong to no request reach legacy clients only while `broadcast` is on (a
    /// host turns it on once it has started, so start-up lines stay on standard error).
    public init(
        label: String, server: MCPServer?, redactor: Redactor, level: Logger.Level = .info,
        broadcast: LogBroadcastSwitch
    ) {
        self.label = label
        self.server = server
        self.redactor = redactor
        self.logLevel = level
        self.broadcasts = broadcast
    }

    /// Makes every logger of the process log through this handler (swift-log's bootstrap: once,
    /// at start-up), at `level` (a swift-log level name; `info` when it is not one).
    /// With `json`, standard error gets one JSON object per event (``jsonLine(_:at:)``).
    public static func bootstrap(
        server: MCPServer, redactor: Redactor, level: String, broadcast: LogBroadcastSwitch, json: Bool = false
    ) {
        let level = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap {
            var handler = MCPLogHandler(
                label: $0, server: server, redactor: redactor, level: level, broadcast: broadcast)
            handler.json = json
            return handler
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = formattedLine(event)
        StandardError.write(json ? jsonLine(event, at: Date()) : "[\(label)] \(event.level): \(line)\n")
        // Inside a request, the message belongs to that request (the only place 2026-07-28
        // allows it, at the level the request asked for); outside, legacy clients get it.
        if let request = RequestContext.current {
            request.log(Self.mcpLevel(event.level), .string(line), logger: label)
        } else if broadcasts.isOn {
            server?.log(Self.mcpLevel(event.level), .string(line), logger: label)
        }
    }

    /// The event's message and metadata (this handler's and the event's, sorted by key) as one
    /// line: redacted, then with control characters escaped, so that one event is always
    /// exactly one line on standard error.
    func formattedLine(_ event: LogEvent) -> String {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let details = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return Redactor.escapingControlCharacters(
            redactor.redact("\(event.message)" + (details.isEmpty ? "" : " " + details)))
    }

    /// The event as one JSON object and a newline: `timestamp` (ISO 8601, milliseconds, UTC),
    /// `level`, `label`, `message` and `metadata` (this handler's and the event's; values as
    /// text), and `trace_id`/`span_id` when logged inside a traced span; each text redacted as
    /// the text lines are. JSON escapes every control character, so one event is one line.
    func jsonLine(_ event: LogEvent, at date: Date) -> String {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var metadata: [String: String] = [:]
        for (key, value) in merged { metadata[key] = redactor.redact("\(value)") }
        var entry = JSONLogEntry(
            timestamp: date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            level: "\(event.level)", label: label, message: redactor.redact("\(event.message)"), metadata: metadata)
        (entry.trace_id, entry.span_id) = Self.traceIDs()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(entry) else { return "{}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private struct JSONLogEntry: Encodable {
        var timestamp: String
        var level: String
        var label: String
        var message: String
        var metadata: [String: String]
        var trace_id: String?
        var span_id: String?
    }

    /// The trace and span the event was logged in, as the host's tracer propagates them (W3C
    /// `traceparent`, whatever the tracer): so a shipper joins log lines to their traces. None
    /// outside a span, or with no tracer.
    static func traceIDs() -> (String?, String?) {
        guard let context = ServiceContext.current else { return (nil, nil) }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: TraceCarrier())
        let parts = carrier["traceparent"]?.split(separator: "-") ?? []
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return (nil, nil) }
        return (String(parts[1]), String(parts[2]))
    }

    private struct TraceCarrier: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
            carrier[key.lowercased()] = value
        }
    }

    static func mcpLevel(_ level: Logger.Level) -> LogLevel {
        switch level {
        case .trace, .debug: return .debug
        case .info: return .info
        case .notice: return .notice
        case .warning: return .warning
        case .error: return .error
        case .critical: return .critical
        }
    }
}
