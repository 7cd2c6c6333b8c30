import Foundation
import FuzzTargets
import Testing

/// Every input kept under Fuzz/Corpus/<target>/ — the seed corpus `scripts/fuzz` starts
/// from, and every crash it found, once fixed — runs through its target on every test run.
@Suite struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Corpus")

    static func inputs(_ target: FuzzTarget) throws -> [URL] {
        let folder = root.appendingPathComponent(target.rawValue)
        return try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil).sorted {
            $0.path < $1.path
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everyKeptInputRunsCleanly(target: FuzzTarget) async throws {
        let files = try Self.inputs(target)
        #expect(!files.isEmpty, "no kept inputs for \(target.rawValue) in \(Self.root.path)")
        for file in files {
            await target.run(bytes: Array(try Data(contentsOf: file)))
        }
    }
}
