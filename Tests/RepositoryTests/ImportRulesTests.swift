import Foundation
import Testing

/// Who may import whom (Docs/architecture.md): a forbidden import fails here, naming file and
/// line, before it can tangle the modules.
@Suite struct ImportRulesTests {
    /// Target → modules it must never import.
    static let forbidden: [String: Set<String>] = [
        "MCPCore": [
            "Foundation", "FoundationEssentials", "MCPClient", "TwilioPayments", "PaymentFlow", "PaymentsMCP",
            "CallbackHTTP", "TwilioSimulator",
            "Hummingbird", "HummingbirdCore", "ListenerGuard", "MCPHTTP", "NIOCore", "JWTKit",
        ],
        // The HTTP transport is MCP only: no payment, no Twilio, no listener of its own.
        "MCPHTTP": [
            "TwilioPayments", "PaymentFlow", "PaymentsMCP", "PaymentsService", "CallbackHTTP", "TwilioSimulator",
            "MCPClient",
        ],
        "MCPClient": [
            "Foundation", "FoundationEssentials", "TwilioPayments", "PaymentFlow", "PaymentsMCP", "CallbackHTTP",
            "TwilioSimulator",
            "Hummingbird", "HummingbirdCore", "ListenerGuard",
        ],
        "TwilioPayments": [
            "MCPCore", "PaymentFlow", "PaymentsMCP", "PaymentsService", "CallbackHTTP", "TwilioSimulator",
            "Hummingbird", "HummingbirdCore",
        ],
        "PaymentFlow": [
            "MCPCore", "PaymentsMCP", "PaymentsService", "ServiceLifecycle", "Hummingbird", "HummingbirdCore",
            "CallbackHTTP", "TwilioSimulator", "ListenerGuard",
        ],
        // Routes and checks for a host's application: no server of its own.
        "CallbackHTTP": ["PaymentFlow", "MCPCore", "PaymentsMCP", "MCPHTTP", "ListenerGuard"],
        "TwilioSimulator": ["PaymentFlow", "MCPCore", "PaymentsMCP", "CallbackHTTP"],
        "ListenerGuard": [
            "PaymentFlow", "MCPCore", "PaymentsMCP", "TwilioPayments", "CallbackHTTP", "TwilioSimulator",
        ],
        // MCP terms for the flow, for any transport: no listener, no HTTP (its fan-out and commands run as a Service).
        "PaymentsMCP": [
            "Hummingbird", "HummingbirdCore", "CallbackHTTP", "TwilioSimulator", "PaymentsService", "MCPHTTP",
            "PostgresNIO",
        ],
        // The service library assembles the flow for any host: it knows no MCP.
        "PaymentsService": ["MCPCore", "MCPClient", "PaymentsMCP", "MCPHTTP"],
        // Events leave for any host's endpoints: no MCP, no listener.
        "PaymentEvents": [
            "MCPCore", "MCPClient", "PaymentsMCP", "MCPHTTP", "PaymentsService", "CallbackHTTP", "Hummingbird",
            "HummingbirdCore",
            "PaymentStorePostgres", "PostgresNIO",
        ],
        // The database fills PaymentFlow's protocols: it knows no MCP, no HTTP, no webhook delivery.
        "PaymentStorePostgres": [
            "MCPCore", "MCPClient", "PaymentsMCP", "MCPHTTP", "PaymentsService", "CallbackHTTP", "TwilioSimulator",
            "Hummingbird", "HummingbirdCore", "PaymentEvents", "AsyncHTTPClient", "ListenerGuard",
        ],
        // Settings are read here and become the libraries' typed configuration: no server, no MCP engine.
        "PaymentsSettings": [
            "MCPCore", "MCPClient", "Hummingbird", "HummingbirdCore", "CallbackHTTP", "PostgresNIO", "AsyncHTTPClient",
            "ServiceLifecycle",
        ],
        // The demo is an MCP client of the server's executable: it knows no flow, no server.
        "PaymentsDemo": [
            "PaymentFlow", "PaymentsMCP", "PaymentsService", "MCPHTTP", "CallbackHTTP", "TwilioSimulator",
            "Hummingbird", "HummingbirdCore", "PaymentStorePostgres",
        ],
        // The command line's declarations (serve's options, the operator's commands): settings
        // and the database's operator side, no server, no MCP, no HTTP.
        "AgentPaymentsCLI": [
            "MCPCore", "MCPClient", "MCPHTTP", "PaymentsMCP", "PaymentsService", "CallbackHTTP", "TwilioSimulator",
            "Hummingbird", "HummingbirdCore", "ListenerGuard", "PostgresNIO", "AsyncHTTPClient", "NIOCore",
            "ServiceLifecycle",
        ],
        // The executable wires libraries together and builds the one application: protocols,
        // databases, HTTP clients and crypto are the libraries' business.
        "agent-payments": [
            "PostgresNIO", "AsyncHTTPClient", "JWTKit", "Crypto", "HummingbirdCore", "NIOHTTP1",
        ],
        // The helper executables the tests start: each exercises one library, nothing else.
        "twilio-simulator": [
            "MCPCore", "MCPClient", "PaymentsMCP", "MCPHTTP", "PaymentFlow", "PaymentsService", "CallbackHTTP",
            "PaymentStorePostgres",
        ],
        "twilio-signature-check": [
            "MCPCore", "PaymentFlow", "PaymentsMCP", "CallbackHTTP", "TwilioSimulator", "Hummingbird",
        ],
        "callback-receiver-check": [
            "MCPCore", "PaymentFlow", "PaymentsMCP", "PaymentsService", "TwilioSimulator", "PaymentStorePostgres",
        ],
        "mcpcore-fixture-server": [
            "Foundation", "TwilioPayments", "PaymentFlow", "PaymentsMCP", "CallbackHTTP", "Hummingbird", "MCPHTTP",
        ],
    ]

    /// The helper executables the tests start live beside the tests, not in Sources/.
    static let testExecutables: Set<String> = [
        "mcpcore-fixture-server", "callback-receiver-check", "twilio-signature-check",
    ]

    static func folder(of target: String) -> String {
        testExecutables.contains(target) ? "Tests/Executables/\(target)" : "Sources/\(target)"
    }

    /// Every Swift target under Sources/ has its rule above: a new target cannot slip in unruled.
    @Test func everyTargetHasARule() throws {
        let sources = Repository.root.appendingPathComponent("Sources")
        let targets = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { name in
            let files =
                (try? FileManager.default.contentsOfDirectory(atPath: sources.appendingPathComponent(name).path)) ?? []
            return files.contains { $0.hasSuffix(".swift") }
        }
        #expect(!targets.isEmpty)
        let unruled = targets.filter { Self.forbidden[$0] == nil }.sorted()
        #expect(unruled.isEmpty, "targets without an import rule: \(unruled)")
    }

    @Test func noTargetImportsWhatItMustNot() throws {
        var findings: [String] = []
        for (target, banned) in Self.forbidden {
            let files = try Repository.files(under: Self.folder(of: target)).filter {
                $0.relativePath.hasSuffix(".swift")
            }
            #expect(!files.isEmpty, "no sources found for \(target)")
            for file in files {
                for (module, line) in ImportRule.imports(in: file.text) where banned.contains(module) {
                    findings.append("\(file.relativePath):\(line): \(target) must not import \(module)")
                }
            }
        }
        #expect(findings.isEmpty, "forbidden imports:\n\(findings.joined(separator: "\n"))")
    }

    /// Libraries count through swift-metrics' CoreMetrics only: the backend (Prometheus) and its
    /// bootstrap are the executable's choice, as a host's would be.
    @Test func onlyTheExecutableChoosesAMetricsBackend() throws {
        var findings: [String] = []
        for target in Self.forbidden.keys where target != "agent-payments" {
            for file in try Repository.files(under: Self.folder(of: target)) where file.relativePath.hasSuffix(".swift")
            {
                for (module, line) in ImportRule.imports(in: file.text)
                where ["Metrics", "Prometheus"].contains(module) {
                    findings.append("\(file.relativePath):\(line): \(target) imports \(module)")
                }
            }
        }
        #expect(findings.isEmpty, "a library chose a metrics backend:\n\(findings.joined(separator: "\n"))")
    }

    /// Libraries read no process environment and write nothing to the process's standard streams
    /// by themselves: the executable, like any host, decides both (over stdio, standard output
    /// carries MCP messages only). The process's executables and the tests' helpers may.
    @Test func librariesTouchNoProcessState() throws {
        let executables = Self.testExecutables.union(["agent-payments", "twilio-simulator"])
        var findings: [String] = []
        for target in Self.forbidden.keys where !executables.contains(target) {
            for file in try Repository.files(under: Self.folder(of: target)) where file.relativePath.hasSuffix(".swift")
            {
                findings += ProcessState.uses(in: file.text).map { "\(file.relativePath):\($0.line): \($0.use)" }
            }
        }
        #expect(
            findings.isEmpty,
            "a library touches the process's environment or streams:\n\(findings.joined(separator: "\n"))")
    }

    @Test func processStateIsFoundInEveryForm() {
        let text = """
            let variables = ProcessInfo.processInfo.environment
            print("hello")
            FileHandle.standardError.write(data)
            let home = getenv("HOME")
            /// print("in a comment")
            let digest = fingerprint(key)
            logger.print(line)
            """
        #expect(ProcessState.uses(in: text).map(\.line) == [1, 2, 3, 4])
    }

    /// PaymentFlow is for any host: its guidance names no MCP tool or prompt.
    @Test func paymentFlowSpeaksNoMCP() throws {
        let names = [
            "startPaymentCapture", "captureCardNumber", "captureSecurityCode", "captureExpirationDate",
            "capturePostalCode",
            "captureBankRoutingNumber", "captureBankAccountNumber", "completePaymentCapture", "cancelPaymentCapture",
            "getPaymentStatus", "tools/call", "resources/",
        ]
        var findings: [String] = []
        for file in try Repository.files(under: "Sources/PaymentFlow") {
            for (index, line) in file.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                for name in names where line.contains(name) {
                    findings.append("\(file.relativePath):\(index + 1): \(name)")
                }
            }
        }
        #expect(findings.isEmpty, "PaymentFlow names MCP things:\n\(findings.joined(separator: "\n"))")
    }

    @Test func importsAreReadInEveryForm() {
        let text =
            "import Foundation\npublic import MCPCore\n@testable import PaymentFlow\ninternal import struct NIOCore.ByteBuffer\n// import Hummingbird\n  @_exported public import Logging\n"
        #expect(
            ImportRule.imports(in: text).map(\.module) == [
                "Foundation", "MCPCore", "PaymentFlow", "NIOCore", "Logging",
            ])
    }
}

enum ProcessState {
    static let patterns = [
        #"ProcessInfo\.processInfo\.environment"#, #"\b[gs]etenv\("#, #"FileHandle\.standard(Output|Error)"#,
        #"(?<![\w.])print\("#, #"\bSTD(OUT|ERR)_FILENO\b"#,
    ].map { try! NSRegularExpression(pattern: $0) }

    /// Each line of `text` (comments skipped) that reads the environment or writes a standard stream.
    static func uses(in text: String) -> [(use: String, line: Int)] {
        var found: [(String, Int)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            guard !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") else { continue }
            let range = NSRange(line.startIndex..., in: line)
            if patterns.contains(where: { $0.firstMatch(in: line, range: range) != nil }) {
                found.append((line.trimmingCharacters(in: .whitespaces), index + 1))
            }
        }
        return found
    }
}

enum ImportRule {
    /// Every imported module in `text` with its line number (comments skipped).
    static func imports(in text: String) -> [(module: String, line: Int)] {
        var found: [(String, Int)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = raw.split(separator: " ").map(String.init).filter { !$0.isEmpty }
            guard let position = words.firstIndex(of: "import"), words.first?.hasPrefix("//") == false else { continue }
            let modifiers = Set([
                "public", "internal", "package", "private", "fileprivate", "@testable", "@_exported", "@preconcurrency",
                "@_implementationOnly",
            ])
            guard words[..<position].allSatisfy(modifiers.contains), position + 1 < words.count else { continue }
            var target = words[position + 1]
            if ["struct", "class", "enum", "protocol", "func", "typealias", "var", "let"].contains(target),
                position + 2 < words.count
            {
                target = words[position + 2]
            }
            found.append((String(target.split(separator: ".").first ?? Substring(target)), index + 1))
        }
        return found
    }
}
