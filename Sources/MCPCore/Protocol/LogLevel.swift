/// The RFC 5424 severities MCP log notifications use, ordered from least to most severe.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case debug, info, notice, warning, error, critical, alert, emergency

    private var rank: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }

    /// The accepted spellings, for error messages.
    static let spelledOut = allCases.map(\.rawValue).joined(separator: ", ")
}
