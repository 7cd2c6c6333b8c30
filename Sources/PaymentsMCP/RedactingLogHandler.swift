public import Logging
public import MCPCore
import Foundation

/// The one place that decides what a log line may contain: secrets are replaced by
/// `<redacted>` and any run of 12–19 digits (a card or account number, with spaces or dashes)
/// keeps only its last four digits. Everything passes through it on its way to standard
/// error and to MCP log notifications; nothing goes to standard output.
public struct Redactor: Sendable {
    private let secrets: [String]

    public init(secrets: [String]) {
        self.secrets = secrets.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
    }

    public func redact(_ text: String) -> String {
        var result = text
        for secret in secrets { result = result.replacingOccurrences(of: secret, with: "<redacted>") }
        return Self.maskDigitRuns(result)
    }

    static func maskDigitRuns(_ text: String) -> String {
        var output = ""
        var run: [Character] = []
        func flush() {
            let digits = run.filter(\.isNumber).count
            if digits >= 12 && digits <= 19 {
                var toMask = digits - 4
                for character in run {
                    if character.isNumber, toMask > 0 { output.append("x"); toMask -= 1 } else { output.append(character) }
                }
            } else {
                output.append(contentsOf: run)
            }
            run.removeAll()
        }
        for character in text {
            if character.isASCII && character.isNumber || (!run.isEmpty && (character == " " || character == "-")) {
                run.append(character)
            } else {
                flush()
                output.append(character)
            }
        }
        flush()
        return output
    }
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

    public init(label: String, server: MCPServer?, redactor: Redactor, level: Logger.Level = .info) {
        self.label = label
        self.server = server
        self.redactor = redactor
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let details = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = redactor.redact("\(event.message)" + (details.isEmpty ? "" : " " + details))
        FileHandle.standardError.write(Data("[\(label)] \(event.level): \(line)\n".utf8))
        // Inside a request, the message belongs to that request (the only place 2026-07-28
        // allows it, at the level the request asked for); outside, legacy clients get it.
        if let request = RequestContext.current {
            request.log(Self.mcpLevel(event.level), .string(line), logger: label)
        } else {
            server?.log(Self.mcpLevel(event.level), .string(line), logger: label)
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
