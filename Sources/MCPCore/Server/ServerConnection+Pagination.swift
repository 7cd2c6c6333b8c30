import Synchronization

/// Cursor pagination of list results.
extension ServerConnection {
    // MARK: Pagination

    static let cursorPrefix = "mcpcore:"

    func paginate(_ items: [JSONValue], key: String, params: JSONValue) -> Result<JSONValue, JSONRPCError> {
        var offset = 0
        if let cursorValue = params["cursor"] {
            guard let cursor = cursorValue.stringValue, cursor.hasPrefix(Self.cursorPrefix),
                let decoded = Int(cursor.dropFirst(Self.cursorPrefix.count), radix: 16), decoded >= 0,
                decoded <= items.count
            else {
                return .failure(
                    .invalidParams("\"cursor\" is not a cursor this server issued; list again from the start"))
            }
            offset = decoded
        }
        let end = min(items.count, offset + server.options.pageSize)
        let next = end < items.count ? JSONValue.string(Self.cursorPrefix + String(end, radix: 16)) : nil
        return .success(.object(dropping: [key: .array(Array(items[offset..<end])), "nextCursor": next]))
    }
}
