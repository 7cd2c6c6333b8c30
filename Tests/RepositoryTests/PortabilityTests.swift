import Foundation
import Testing

/// The package builds on macOS (where Claude Desktop runs) as well as Linux: a Linux-only idiom
/// in `Sources/` must sit in a `#if os(Linux)` / `#if canImport(Glibc)` branch whose `#if`
/// chain also has a Darwin branch (`canImport(Darwin)`, `os(macOS)`, or a plain `#else`).
@Suite struct PortabilityTests {
    @Test func sourcesUseLinuxOnlyIdiomsOnlyInBranchesWithADarwinSibling() throws {
        var findings: [String] = []
        var scanned = 0
        for file in try Repository.files(under: "Sources") where file.relativePath.hasSuffix(".swift") {
            scanned += 1
            findings += PortabilityRule.findings(in: file.text, path: file.relativePath)
        }
        // The benchmarks read /proc for memory figures (Linux only, and they say so), but they
        // must still compile on macOS.
        for file in try Repository.files(under: "Benchmarks") where file.relativePath.hasSuffix(".swift") {
            scanned += 1
            findings += PortabilityRule.findings(in: file.text, path: file.relativePath, allowingProcfs: true)
        }
        #expect(scanned > 40, "scanned only \(scanned) Swift files")
        #expect(findings.isEmpty, "Linux-only code without a Darwin branch:\n\(findings.joined(separator: "\n"))")
    }

    @Test func theRuleCatchesEachIdiom() {
        let proc = "/" + "proc/self/exe"
        let cases = [
            "let path = \"\(proc)\"",
            "let fd = socket(AF_INET, Int32(SOCK_STREAM" + ".rawValue), 0)",
            "let fd = socket(AF_INET, SOCK_STREAM | SOCK_" + "CLOEXEC, 0)",
            "_ = Glibc" + ".close(fd)",
            "let poller = epoll" + "_create1(0)",
            "prctl" + "(PR_SET_PDEATHSIG, SIGTERM)",
        ]
        for line in cases {
            #expect(
                PortabilityRule.findings(in: "import Foundation\n\(line)\n", path: "Sources/X/x.swift").count == 1,
                "\(line)")
            // Inside a Linux branch with no Darwin sibling: still a finding.
            let lonely = "#if canImport(Glibc)\n\(line)\n#endif\n"
            #expect(PortabilityRule.findings(in: lonely, path: "Sources/X/x.swift").count == 1, "\(line)")
            // With a Darwin sibling: fine.
            let paired = "#if canImport(Glibc)\n\(line)\n#elseif canImport(Darwin)\nlet other = 1\n#endif\n"
            #expect(PortabilityRule.findings(in: paired, path: "Sources/X/x.swift").isEmpty, "\(line)")
            let elsePaired = "#if os(Linux)\n\(line)\n#else\nlet other = 1\n#endif\n"
            #expect(PortabilityRule.findings(in: elsePaired, path: "Sources/X/x.swift").isEmpty, "\(line)")
        }
        // An import of Glibc needs a Darwin counterpart in the same chain.
        #expect(
            PortabilityRule.findings(in: "#if canImport(Glibc)\nimport Glibc\n#endif\n", path: "Sources/X/x.swift")
                .count == 1)
        #expect(
            PortabilityRule.findings(
                in: "#if canImport(Glibc)\nimport Glibc\n#elseif canImport(Darwin)\nimport Darwin\n#endif\n",
                path: "Sources/X/x.swift"
            ).isEmpty)
        // In the Darwin branch, the idiom is someone else's problem... but not Linux's.
        #expect(
            PortabilityRule.findings(in: "// a comment about " + "epoll" + " is fine\n", path: "Sources/X/x.swift")
                .isEmpty)
    }
}

/// Finds Linux-only idioms outside a Linux branch that has a Darwin sibling.
enum PortabilityRule {
    /// Spelled in pieces so this file does not flag itself.
    static let idioms: [String] = [
        "/" + "proc/", "SOCK_STREAM" + ".rawValue", "SOCK_DGRAM" + ".rawValue", "SOCK_" + "CLOEXEC",
        "Glibc" + ".", "epoll" + "_", "prctl" + "(", "import " + "Glibc",
    ]

    private struct Chain {
        var branches: [(condition: String, start: Int)] = []
        var end = 0
    }

    static func isLinux(_ condition: String) -> Bool {
        condition.contains("canImport(Glibc)") || condition.contains("os(Linux)")
            || condition.contains("canImport(Musl)")
    }

    static func isDarwin(_ condition: String) -> Bool {
        condition == "#else" || condition.contains("canImport(Darwin)") || condition.contains("os(macOS)")
    }

    static func findings(in text: String, path: String, allowingProcfs: Bool = false) -> [String] {
        let idioms = allowingProcfs ? Self.idioms.filter { $0 != "/" + "proc/" } : Self.idioms
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // The #if chains: each branch's condition and the lines it covers.
        var chains: [Chain] = []
        var open: [Chain] = []
        for (index, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#if ") {
                open.append(Chain(branches: [(line, index)]))
            } else if line.hasPrefix("#elseif ") || line == "#else" {
                open[open.count - 1].branches.append((line, index))
            } else if line.hasPrefix("#endif"), var chain = open.popLast() {
                chain.end = index
                chains.append(chain)
            }
        }
        var found: [String] = []
        for (index, raw) in lines.enumerated() {
            let code = raw.components(separatedBy: "//").first ?? raw
            guard idioms.contains(where: code.contains) else { continue }
            // The innermost branch that holds this line.
            var innermost: (condition: String, chain: Chain)?
            for chain in chains where chain.branches[0].start < index && index < chain.end {
                for (position, branch) in chain.branches.enumerated() {
                    let stop = position + 1 < chain.branches.count ? chain.branches[position + 1].start : chain.end
                    if branch.start < index && index < stop {
                        if innermost == nil || branch.start > innermost!.chain.branches.first!.start {
                            innermost = (branch.condition, chain)
                        }
                    }
                }
            }
            let paired =
                innermost.map { isLinux($0.condition) && $0.chain.branches.contains { isDarwin($0.condition) } }
                ?? false
            if !paired { found.append("\(path):\(index + 1): \(raw.trimmingCharacters(in: .whitespaces))") }
        }
        return found
    }
}
