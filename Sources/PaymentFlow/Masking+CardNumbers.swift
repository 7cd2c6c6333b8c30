extension Masking {
    /// Whether `text` holds what looks like a card number: 12 to 19 digits in a row that pass
    /// the Luhn check, written together or in groups with a single space or dash between them
    /// (`4111 1111 1111 1111`, `4111-1111-1111-1111`), also inside a longer run of digits
    /// (`4111-1111-1111-1111-1225`, a card number and its expiry date). Digits of any script
    /// count (`４１１１…`). Masked values (`xxxxxxxxxxxx1111`) do not, and neither do the digits
    /// of a Twilio SID (two capital letters and 32 hex digits, such as a payment's `PK…`).
    ///
    /// For refusing free text that should never carry a card number, such as a tool's
    /// arguments. Like any such check it is a net, not a proof: about one run of 12 digits in
    /// ten passes the Luhn check by chance, and nearly every run of 20 or more holds a window
    /// that does.
    public static func containsCardNumber(_ text: String) -> Bool {
        !cardNumberRanges(in: text).isEmpty
    }

    /// Where `text` holds card-number-like digits (see ``containsCardNumber(_:)``): each range
    /// runs from the first digit of such a window to its last, separators between included;
    /// overlapping windows are merged. In order, not overlapping.
    public static func cardNumberRanges(in text: String) -> [Range<String.Index>] {
        var ranges: [Range<String.Index>] = []
        // The run being read: each digit's value and where it starts and ends in `text`.
        var values: [Int] = []
        var bounds: [Range<String.Index>] = []
        var separated = false
        func finishRun() {
            if values.count >= 12 {
                for window in merged(cardNumberWindows(in: values)) {
                    ranges.append(bounds[window.lowerBound].lowerBound..<bounds[window.upperBound - 1].upperBound)
                }
            }
            values.removeAll(keepingCapacity: true)
            bounds.removeAll(keepingCapacity: true)
            separated = false
        }
        let indices = Array(text.indices)
        let characters = indices.map { text[$0] }
        var offset = 0
        while offset < characters.count {
            if values.isEmpty, isTwilioSID(characters, at: offset) {
                offset += 34
                continue
            }
            let character = characters[offset]
            let end = offset + 1 < indices.count ? indices[offset + 1] : text.endIndex
            if let value = decimalDigit(character) {
                values.append(value)
                bounds.append(indices[offset]..<end)
                separated = false
            } else if character == " " || character == "-", !values.isEmpty, !separated {
                separated = true
            } else {
                finishRun()
            }
            offset += 1
        }
        finishRun()
        return ranges
    }

    /// Whether the 34 characters at `offset` are a Twilio SID standing alone (two capital
    /// letters and 32 hex digits, no letter or digit on either side): an identifier, never a
    /// card number.
    static func isTwilioSID(_ characters: [Character], at offset: Int) -> Bool {
        guard offset + 34 <= characters.count, characters[offset].isASCII, characters[offset].isUppercase,
            characters[offset + 1].isASCII, characters[offset + 1].isUppercase
        else { return false }
        if offset > 0, characters[offset - 1].isLetter || characters[offset - 1].isNumber { return false }
        for index in offset + 2..<offset + 34 where !characters[index].isHexDigit { return false }
        return offset + 34 == characters.count
            || !(characters[offset + 34].isLetter || characters[offset + 34].isNumber)
    }

    /// The windows of one run of digits (`digits` are their values, 0–9) that look like a card
    /// number: 12 to 19 digits in a row that pass the Luhn check, as offsets into `digits`,
    /// shortest first, then by where they start.
    public static func cardNumberWindows(in digits: [Int]) -> [Range<Int>] {
        guard digits.count >= 12 else { return [] }
        // Luhn doubles every second digit counted from the window's last one, so which digits
        // are doubled depends on where the window ends: sums over each parity, plain and
        // doubled, make every window's checksum a few subtractions.
        var plain = [[0], [0]]
        var doubled = [[0], [0]]
        for (offset, digit) in digits.enumerated() {
            let twice = digit * 2 > 9 ? digit * 2 - 9 : digit * 2
            for parity in 0...1 {
                plain[parity].append(plain[parity].last! + (offset % 2 == parity ? digit : 0))
                doubled[parity].append(doubled[parity].last! + (offset % 2 == parity ? twice : 0))
            }
        }
        var windows: [Range<Int>] = []
        for length in 12...min(19, digits.count) {
            for start in 0...(digits.count - length) {
                let end = start + length
                // The digits doubled are those whose offset has the parity of `end`.
                let twicePart = doubled[end % 2][end] - doubled[end % 2][start]
                let plainPart = plain[1 - end % 2][end] - plain[1 - end % 2][start]
                if (twicePart + plainPart) % 10 == 0 { windows.append(start..<end) }
            }
        }
        return windows
    }

    /// `windows` with those that overlap or touch joined, in order.
    private static func merged(_ windows: [Range<Int>]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        for window in windows.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, window.lowerBound <= last.upperBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, window.upperBound)
            } else {
                result.append(window)
            }
        }
        return result
    }

    /// The value of a decimal digit of any script (`4`, `٤`, `４`); `nil` for anything else
    /// (`½`, `²`, `③` are numbers, not decimal digits).
    static func decimalDigit(_ character: Character) -> Int? {
        guard character.unicodeScalars.count == 1, let scalar = character.unicodeScalars.first,
            scalar.properties.numericType == .decimal, let value = character.wholeNumberValue, (0...9).contains(value)
        else { return nil }
        return value
    }
}
