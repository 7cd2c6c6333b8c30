extension StringProtocol {
    /// The text without the whitespace and newlines at either end, in Swift's own terms
    /// (`Character.isWhitespace`): Foundation's `trimmingCharacters(in:)` goes through NSString
    /// and CoreFoundation's first initialisation, which cost the server's start (settings are
    /// read on the way to the first answer).
    var trimmed: String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
            let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
