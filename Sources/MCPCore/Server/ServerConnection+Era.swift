import Synchronization

/// The era rules: which protocol revision a connection speaks, and what each request must carry.
extension ServerConnection {
    // MARK: Era

    static let removedInModern: [String: String] = [
        "ping": "ping was removed in 2026-07-28",
        "logging/setLevel": "2026-07-28 sets the log level per request with io.modelcontextprotocol/logLevel in _meta",
        "resources/subscribe": "2026-07-28 replaced it with subscriptions/listen",
        "resources/unsubscribe": "2026-07-28 replaced it with subscriptions/listen",
        "notifications/initialized": "2026-07-28 has no handshake",
    ]

    static let modernOnly: Set<String> = ["server/discover", "subscriptions/listen"]

    /// Decides how a request is served, or the error that refuses it.
    func admit(id: RequestID, method: String, params: JSONValue) -> Result<RequestContext, JSONRPCError> {
        let meta = params["_meta"]
        let progressToken = meta?[MetaKey.progressToken].flatMap { token -> JSONValue? in
            switch token {
            case .string, .integer: return token
            default: return nil
            }
        }
        let requestedModern = meta?[MetaKey.protocolVersion]

        let phase = state.withLock { $0.phase }
        switch phase {
        case .legacy(let version, let clientInfo, let capabilities, _):
            if method == "initialize" {
                return .failure(
                    .invalidRequest("initialize was already answered on this connection (protocol \(version))"))
            }
            if Self.modernOnly.contains(method) {
                return .failure(
                    .methodNotFound(
                        method,
                        detail:
                            "this connection speaks \(version), opened with initialize; \(method) belongs to 2026-07-28"
                    ))
            }
            let level = state.withLock { $0.legacyLogLevel }
            return .success(
                makeContext(
                    id: id, method: method, era: .legacy(version: version), clientInfo: clientInfo,
                    capabilities: capabilities, meta: meta, progressToken: progressToken, logLevel: level))
        case .modern:
            if method == "initialize" {
                return .failure(
                    .unsupportedProtocolVersion(
                        requested: params["protocolVersion"]?.stringValue ?? "unknown",
                        supported: ProtocolVersion.modern.reversed(),
                        detail:
                            "this connection speaks 2026-07-28 (decided by its first message), which has no initialize handshake"
                    ))
            }
            return admitModern(id: id, method: method, meta: meta, progressToken: progressToken, locking: false)
        case .undecided:
            if method == "initialize" {
                return .success(
                    makeContext(
                        id: id, method: method, era: .legacy(version: ProtocolVersion.latestLegacy),
                        clientInfo: nil, capabilities: [:], meta: meta, progressToken: progressToken, logLevel: nil))
            }
            if requestedModern != nil {
                return admitModern(id: id, method: method, meta: meta, progressToken: progressToken, locking: true)
            }
            if method == "ping" {
                // The legacy lifecycle allows ping before initialize.
                return .success(
                    makeContext(
                        id: id, method: method, era: .legacy(version: ProtocolVersion.latestLegacy),
                        clientInfo: nil, capabilities: [:], meta: meta, progressToken: progressToken, logLevel: nil))
            }
            return .failure(
                JSONRPCError(
                    code: JSONRPCError.invalidRequestCode,
                    message: "Server not initialized: send initialize first (protocol 2025-11-25 and earlier), or put "
                        + "\(MetaKey.protocolVersion) and \(MetaKey.clientCapabilities) in _meta (protocol 2026-07-28)",
                    data: ["supported": .array(ProtocolVersion.all.map(JSONValue.string))]
                ))
        }
    }

    func admitModern(
        id: RequestID, method: String, meta: JSONValue?, progressToken: JSONValue?, locking: Bool
    )
        -> Result<RequestContext, JSONRPCError>
    {
        guard let versionValue = meta?[MetaKey.protocolVersion] else {
            return .failure(
                .invalidParams("_meta.\"\(MetaKey.protocolVersion)\" is required on every 2026-07-28 request"))
        }
        guard let version = versionValue.stringValue else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.protocolVersion)\" must be a string"))
        }
        guard ProtocolVersion.modern.contains(version) else {
            // On a connection not yet decided, legacy revisions remain open through initialize.
            let supported = locking ? ProtocolVersion.all : ProtocolVersion.modern.reversed()
            return .failure(.unsupportedProtocolVersion(requested: version, supported: supported))
        }
        guard let capabilities = meta?[MetaKey.clientCapabilities] else {
            return .failure(
                .invalidParams("_meta.\"\(MetaKey.clientCapabilities)\" is required on every 2026-07-28 request"))
        }
        guard capabilities.objectValue != nil else {
            return .failure(.invalidParams("_meta.\"\(MetaKey.clientCapabilities)\" must be an object"))
        }
        var logLevel: LogLevel?
        if let levelValue = meta?[MetaKey.logLevel] {
            guard let name = levelValue.stringValue, let level = LogLevel(rawValue: name) else {
                return .failure(.invalidParams("_meta.\"\(MetaKey.logLevel)\" must be one of \(LogLevel.spelledOut)"))
            }
            logLevel = level
        }
        if let reason = Self.removedInModern[method] {
            return .failure(.methodNotFound(method, detail: reason))
        }
        if locking {
            state.withLock { state in
                if case .undecided = state.phase { state.phase = .modern }
            }
        }
        return .success(
            makeContext(
                id: id, method: method, era: .modern(version: version),
                clientInfo: Implementation(json: meta?[MetaKey.clientInfo]), capabilities: capabilities,
                meta: meta, progressToken: progressToken, logLevel: logLevel))
    }

    func makeContext(
        id: RequestID, method: String, era: ProtocolEra, clientInfo: Implementation?, capabilities: JSONValue,
        meta: JSONValue?, progressToken: JSONValue?, logLevel: LogLevel?
    ) -> RequestContext {
        RequestContext(
            requestID: id, method: method, era: era, clientInfo: clientInfo, clientCapabilities: capabilities,
            meta: meta, progressToken: progressToken, logLevel: logLevel,
            progress: progressToken == nil ? nil : ProgressTracker(), connection: self)
    }
}
