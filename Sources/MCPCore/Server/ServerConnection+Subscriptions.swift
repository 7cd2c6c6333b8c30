import Synchronization

/// Subscriptions: legacy resource subscriptions, modern listen streams, list-changed and log fan-out.
extension ServerConnection {
    // MARK: Subscriptions

    func openListen(params: JSONValue, context: RequestContext) {
        guard let filterValue = params["notifications"], filterValue.objectValue != nil else {
            finish(
                context, with: .failure(.invalidParams("\"notifications\" (a subscription filter object) is required")))
            return
        }
        let capabilities = server.capabilities()
        var filter = ListenFilter()
        filter.toolsListChanged = filterValue["toolsListChanged"]?.boolValue == true && capabilities["tools"] != nil
        filter.promptsListChanged =
            filterValue["promptsListChanged"]?.boolValue == true && capabilities["prompts"] != nil
        filter.resourcesListChanged =
            filterValue["resourcesListChanged"]?.boolValue == true && capabilities["resources"] != nil
        if capabilities["resources"] != nil {
            filter.resourceSubscriptions = Set(
                filterValue["resourceSubscriptions"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        }
        let registered = state.withLock { state -> Bool in
            guard state.inFlight[context.requestID] != nil else { return false }
            state.listens[context.requestID] = filter
            return true
        }
        guard registered else { return }
        // The acknowledgment is the first message of the stream; it is sent before any
        // change can be delivered on it because delivery happens on this same ordered sink.
        var honored: [String: JSONValue] = [:]
        if filter.toolsListChanged { honored["toolsListChanged"] = true }
        if filter.promptsListChanged { honored["promptsListChanged"] = true }
        if filter.resourcesListChanged { honored["resourcesListChanged"] = true }
        if !filter.resourceSubscriptions.isEmpty {
            honored["resourceSubscriptions"] = .array(filter.resourceSubscriptions.sorted().map(JSONValue.string))
        }
        send(
            .notification(
                method: "notifications/subscriptions/acknowledged",
                params: [
                    "_meta": [MetaKey.subscriptionID: context.requestID.json], "notifications": .object(honored),
                ]), route: .partOf(context.requestID))
        // Opened while the server stops (its `endSubscriptions` may have run before this stream
        // was registered): ended at once with its result, never left open for good.
        if server.isStopped { endSubscriptions() }
    }

    func endSubscriptions() {
        let ids = state.withLock { state -> [RequestID] in
            let ids = Array(state.listens.keys)
            state.listens.removeAll()
            for id in ids { state.inFlight.removeValue(forKey: id) }
            return ids
        }
        for id in ids {
            respond(
                .result(
                    id: id,
                    result: [
                        "resultType": "complete",
                        "_meta": [MetaKey.subscriptionID: id.json, MetaKey.serverInfo: server.info.json],
                    ]))
            // After the response (stdio); a transport with a stream per request has closed it.
            send(
                .notification(
                    method: "notifications/cancelled",
                    params: [
                        "requestId": id.json, "reason": "the server is shutting down",
                    ]), route: .partOf(id))
        }
    }

    /// Returns how many notifications it sent (the legacy session's, and one per listen stream).
    @discardableResult
    func resourceUpdated(uri: String) -> Int {
        let (legacy, streams) = state.withLock { state -> (Bool, [RequestID]) in
            let legacy: Bool
            if case .legacy = state.phase { legacy = state.legacySubscriptions.contains(uri) } else { legacy = false }
            let streams = state.listens.filter { $0.value.resourceSubscriptions.contains(uri) }.map(\.key)
            return (legacy, streams)
        }
        if legacy {
            send(
                .notification(method: "notifications/resources/updated", params: ["uri": .string(uri)]),
                route: .unsolicited)
        }
        for id in streams.sorted(by: { $0.description < $1.description }) {
            send(
                .notification(
                    method: "notifications/resources/updated",
                    params: [
                        "_meta": [MetaKey.subscriptionID: id.json], "uri": .string(uri),
                    ]), route: .partOf(id))
        }
        return (legacy ? 1 : 0) + streams.count
    }

    /// Returns how many notifications it sent.
    @discardableResult
    func listChanged(_ kind: ListKind) -> Int {
        let method: String
        switch kind {
        case .tools: method = "notifications/tools/list_changed"
        case .prompts: method = "notifications/prompts/list_changed"
        case .resources: method = "notifications/resources/list_changed"
        }
        let (legacy, streams) = state.withLock { state -> (Bool, [RequestID]) in
            var legacy = false
            // Resources change with every payment: only a client that listed them hears of it (a
            // short-lived client that never did may be gone when the notice arrives). Tools and
            // prompts change rarely, and clients call them by name without listing.
            if case .legacy(_, _, _, let initialized) = state.phase {
                legacy = initialized && (kind != .resources || state.listed.contains(.resources))
            }
            let streams = state.listens.filter { _, filter in
                switch kind {
                case .tools: return filter.toolsListChanged
                case .prompts: return filter.promptsListChanged
                case .resources: return filter.resourcesListChanged
                }
            }.map(\.key)
            return (legacy, streams)
        }
        if legacy { send(.notification(method: method, params: nil), route: .unsolicited) }
        for id in streams {
            send(
                .notification(method: method, params: ["_meta": [MetaKey.subscriptionID: id.json]]), route: .partOf(id))
        }
        return (legacy ? 1 : 0) + streams.count
    }

    /// The list a listing method reads, if it is one.
    static func listKind(of method: String) -> ListKind? {
        switch method {
        case "tools/list": return .tools
        case "prompts/list": return .prompts
        case "resources/list", "resources/templates/list": return .resources
        default: return nil
        }
    }

    func broadcastLog(_ level: LogLevel, _ data: JSONValue, logger: String?) {
        let admitted = state.withLock { state -> Bool in
            guard case .legacy = state.phase, let minimum = state.legacyLogLevel else { return false }
            return level >= minimum
        }
        guard admitted else { return }
        send(
            .notification(
                method: "notifications/message",
                params: .object(dropping: [
                    "level": .string(level.rawValue), "logger": logger.map(JSONValue.string), "data": data,
                ])), route: .unsolicited)
    }
}
