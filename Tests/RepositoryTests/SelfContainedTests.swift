import Foundation
import Testing

/// A clone must build and test on its own: nothing the project builds, tests or runs may read a
/// file outside the repository (such as a reading-room folder that sits beside it on the
/// developers' machines). This suite scans the folders that hold code and fails, naming file
/// and line, on any path that leaves the repository.
@Suite struct SelfContainedTests {
    /// The folders whose files are code or scripts the project runs.
    static let scannedFolders = ["Sources", "Tests", "Benchmarks", "scripts", ".ci"]

    @Test func noFileRefersOutsideTheRepository() throws {
        let root = Repository.root
        var findings: [String] = []
        var scanned = 0
        for folder in Self.scannedFolders {
            for file in try Repository.files(under: folder) {
                scanned += 1
                findings += OutsidePathRule.findings(in: file.text, path: file.relativePath)
            }
        }
        #expect(scanned > 50, "scanned only \(scanned) files under \(root.path): the scan looks in the wrong place")
        #expect(findings.isEmpty, "paths outside the repository:\n\(findings.joined(separator: "\n"))")
    }

    /// Lines that leave the repository, spelled in pieces so that this file does not flag itself.
    static let leaving: [(String, String)] = {
        let up = ".."
        let room = "sha" + "red"
        let three: String = String(repeating: "../", count: 3)
        var cases: [(String, String)] = []
        cases.append(("Tests/A/x.swift", "let u = \"\(up)/\(room)/reference/x.json\""))
        cases.append(("Tests/A/x.swift", "let u = base.appendingPathComponent(\"\(three)elsewhere/x.json\")"))
        cases.append(("Tests/interop/conftest.py", "SPEC = ROOT.parent / \"\(room)\" / \"reference\""))
        let area = "work"
        cases.append(("scripts/x", "cat /\(area)/main/README.md"))
        cases.append(("scripts/x", "ls $(dirname \"$0\")/\(up)/\(up)/\(room)"))
        return cases
    }()

    /// Lines that stay inside it.
    static let staying: [(String, String)] = [
        ("Tests/A/x.swift", "let u = here.appendingPathComponent(\"../Fixtures/reference/x.json\")"),
        ("scripts/test", "cd \"$(dirname \"$0\")/..\""),
        ("Sources/A/x.swift", "let shared = Shared()"),
        ("Tests/interop/x.py", "from mcp.shared.exceptions import MCPError"),
        ("scripts/x", "ls /usr/include/curl/curl.h"),
    ]

    /// The rule itself catches what it is meant to catch, so an empty result above means something.
    @Test func theRuleFlagsPathsThatLeave() {
        for (path, line) in Self.leaving {
            #expect(OutsidePathRule.findings(in: "ok\n" + line + "\n", path: path) == ["\(path):2: \(line)"])
        }
    }

    @Test func theRuleLeavesInRepositoryPathsAlone() {
        for (path, line) in Self.staying {
            #expect(OutsidePathRule.findings(in: line, path: path).isEmpty, "\(path): \(line)")
        }
    }
}

/// What counts as a path that leaves the repository.
enum OutsidePathRule {
    /// Spelled in pieces so that this file does not flag itself.
    static let readingRoom = [
        "sha" + "red/reference", ".." + "/sha" + "red", "\"sha" + "red\" /", "/" + "work/", "." + "mirror/",
        "." + "library/",
    ]

    /// `path:line: text` for every line of `text` that names a place outside the repository: the
    /// reading room by name, an absolute path into the work area, or a relative path with more
    /// `../` steps than the file is deep (so it climbs out of the repository root).
    static func findings(in text: String, path: String) -> [String] {
        let depth = path.split(separator: "/").count - 1
        var found: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(line)
            if readingRoom.contains(where: line.contains) || climbs(line) > depth {
                found.append("\(path):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        return found
    }

    /// The longest run of consecutive `../` steps in `line`.
    static func climbs(_ line: String) -> Int {
        var longest = 0
        var run = 0
        var rest = Substring(line)
        while !rest.isEmpty {
            if rest.hasPrefix("../") {
                run += 1
                rest = rest.dropFirst(3)
            } else {
                longest = max(longest, run)
                run = 0
                rest = rest.dropFirst()
            }
        }
        return max(longest, run)
    }
}

/// The repository this test file lives in, and its files.
enum Repository {
    /// Two folders above this file: `Tests/RepositoryTests/` → the package root.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().standardizedFileURL

    struct File {
        let relativePath: String
        let text: String
    }

    /// Every text file below `folder` (relative to the root), skipping build folders, the Python
    /// environment and the copied reference data, which is data, not code.
    static func files(under folder: String) throws -> [File] {
        let base = root.appendingPathComponent(folder)
        guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey])
        else { return [] }
        var files: [File] = []
        for case let url as URL in walker {
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count + 1))
            let skipped = [".build", ".venv", "__pycache__", "Tests/Fixtures/"]
            if skipped.contains(where: relative.contains) { continue }
            guard (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true,
                let data = try? Data(contentsOf: url), let text = String(data: data, encoding: .utf8)
            else { continue }
            files.append(File(relativePath: relative, text: text))
        }
        return files
    }
}
