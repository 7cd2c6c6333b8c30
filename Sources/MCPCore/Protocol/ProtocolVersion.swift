/// The protocol revisions MCPCore speaks, and which era each belongs to.
///
/// Legacy revisions open a connection with the `initialize` handshake; the modern revision
/// (2026-07-28) is stateless and carries its version in every request's `_meta`.
public enum ProtocolVersion {
    /// Revisions reachable through `initialize`, oldest first.
    public static let legacy: [String] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    /// Revisions served statelessly through per-request `_meta`, oldest first.
    public static let modern: [String] = ["2026-07-28"]
    /// Every revision, newest first, as listed in `UnsupportedProtocolVersionError`.
    public static let all: [String] = (legacy + modern).reversed()
    /// The newest legacy revision: the answer to an `initialize` naming an unknown version.
    public static let latestLegacy = "2025-11-25"
    /// The newest modern revision.
    public static let latestModern = "2026-07-28"
}

/// Which of the two protocol eras a connection or request is using.
public enum ProtocolEra: Sendable, Equatable {
    /// Opened with `initialize`; the associated value is the negotiated revision.
    case legacy(version: String)
    /// Stateless 2026-07-28 requests; the associated value is the request's revision.
    case modern(version: String)

    /// The revision in use.
    public var version: String {
        switch self {
        case .legacy(let version), .modern(let version): return version
        }
    }

    /// Whether this is the stateless era.
    public var isModern: Bool {
        if case .modern = self { return true }
        return false
    }
}

/// The reserved `_meta` keys of the 2026-07-28 revision.
public enum MetaKey {
    public static let protocolVersion = "io.modelcontextprotocol/protocolVersion"
    public static let clientInfo = "io.modelcontextprotocol/clientInfo"
    public static let clientCapabilities = "io.modelcontextprotocol/clientCapabilities"
    public static let logLevel = "io.modelcontextprotocol/logLevel"
    public static let subscriptionID = "io.modelcontextprotocol/subscriptionId"
    public static let serverInfo = "io.modelcontextprotocol/serverInfo"
    public static let progressToken = "progressToken"
}
