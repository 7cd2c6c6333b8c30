import Foundation

/// An audit trail of JSON lines (``AuditLine``): appended to a file, whose last record it
/// continues after a restart, or handed to a writer (standard error, which the executable
/// gives), which starts a new chain each time the process starts.
public actor JSONLinesAuditTrail: AuditTrail {
    private let handle: FileHandle?
    private let writer: (@Sendable (String) -> Void)?
    private var last: (sequence: Int64, hash: String)?

    /// A trail appended to the file at `path` (created if missing, mode 0600), continuing the
    /// chain of the records already in it. Throws when it cannot be opened or read.
    public init(path: String) throws(AuditTrailError) {
        let url = URL(fileURLWithPath: path)
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            else { throw AuditTrailError("cannot create the audit file \(path)") }
        }
        do {
            last = try Self.lastRecord(in: url)
            handle = try FileHandle(forWritingTo: url)
            try handle?.seekToEnd()
        } catch {
            throw AuditTrailError("cannot open the audit file \(path): \(error.localizedDescription)")
        }
        writer = nil
    }

    /// The newest record's sequence and hash, read from the file's end: the last 64 KiB, then
    /// four times as much each time no whole record is found there, so a trail of years opens
    /// as fast as a new one. A window's first line may be cut, so it is never read as a record.
    static func lastRecord(in url: URL, window first: UInt64 = 64 * 1024) throws -> (Int64, String)? {
        let file = try FileHandle(forReadingFrom: url)
        defer { try? file.close() }
        let size = try file.seekToEnd()
        var window = first
        while true {
            let start = size > window ? size - window : 0
            try file.seek(toOffset: start)
            var data = try file.readToEnd() ?? Data()
            if start > 0 {
                data = data.firstIndex(of: UInt8(ascii: "\n")).map { data[($0 + 1)...] } ?? Data()
            }
            if let last = AuditLine.records(in: String(decoding: data, as: UTF8.self)).last {
                return (last.sequence, last.hash)
            }
            if start == 0 { return nil }
            window *= 4
        }
    }

    /// A trail whose lines (line feed included) go to `write`, starting a new chain.
    public init(writer: @escaping @Sendable (String) -> Void) {
        handle = nil
        self.writer = writer
        last = nil
    }

    public func append(_ entry: AuditEntry) throws(AuditTrailError) {
        let record = AuditRecord(entry: entry, after: last)
        let line = AuditLine.encode(record) + "\n"
        if let handle {
            do {
                try handle.write(contentsOf: Data(line.utf8))
            } catch {
                throw AuditTrailError("cannot append to the audit file: \(error.localizedDescription)")
            }
        } else {
            writer?(line)
        }
        last = (record.sequence, record.hash)
    }
}
