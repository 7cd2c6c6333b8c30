import Foundation
import ListenerGuard
import PaymentsService
import Testing
@testable import PaymentsSettings

/// Settings are read in one place, with command line over environment over file over default,
/// and each value knows where it came from.
@Suite struct SettingsTests {
    /// A file of `text` named `name`, removed after `body`.
    static func withFile<T>(_ name: String, _ text: String, _ body: (String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return try body(path)
    }

    @Test func theCommandLineWinsOverTheEnvironmentWhichWinsOverTheFile() throws {
        let json =
            #"{"CALLBACK_PORT": 7001, "CALLBACK_HOST": "0.0.0.0", "AGENT_PAYMENTS_HTTP": "9001", "CURRENCY": "eur"}"#
        try Self.withFile("agent-payments.json", json) { path in
            let settings = try Settings(
                commandLine: [.http: "9003", .configFile: path],
                environment: ["AGENT_PAYMENTS_HTTP": "9002", "CALLBACK_HOST": "127.0.0.2", "UNRELATED": "x"])
            #expect(settings.value(.http) == "9003" && settings.origin(of: .http) == .commandLine)
            #expect(settings.value(.callbackHost) == "127.0.0.2" && settings.origin(of: .callbackHost) == .environment)
            // A number in the file is read as the text a variable would hold.
            #expect(settings.value(.callbackPort) == "7001" && settings.origin(of: .callbackPort) == .file(path))
            #expect(settings.value(.currency) == "eur")
            #expect(settings.value(.maximumWait) == "3" && settings.origin(of: .maximumWait) == .defaultValue)
            #expect(settings.value(.authToken) == nil && !settings.isSet(.authToken))
            #expect(settings.file == path)
        }
    }

    @Test func aYAMLFileIsReadTooAndTheEnvironmentCanNameIt() throws {
        let yaml = """
            # agent-payments
            CALLBACK_PORT: 7100
            AGENT_PAYMENTS_CURRENCIES: [USD, EUR]
            POSTAL_CODE: true
            AGENT_PAYMENTS_MAX_WAIT_SECONDS: 2.5
            """
        try Self.withFile("agent-payments.yaml", yaml) { path in
            let settings = try Settings(commandLine: [:], environment: ["AGENT_PAYMENTS_CONFIG": path])
            #expect(settings.value(.callbackPort) == "7100")
            #expect(settings.value(.currencies) == "USD,EUR")
            #expect(try settings.flag(.postalCode))
            #expect(try settings.number(.maximumWait, in: 0.1...60, expected: "") == 2.5)
            #expect(settings.origin(of: .currencies) == .file(path))
        }
    }

    @Test func aFileThatCannotBeUsedIsRefusedWithItsReason() throws {
        func refusal(_ name: String, _ text: String) throws -> String? {
            try Self.withFile(name, text) { path -> String? in
                do throws(ConfigurationError) {
                    _ = try Settings(commandLine: [.configFile: path], environment: [:])
                    return nil
                } catch {
                    return error.description
                }
            }
        }
        let misspelt = try refusal("a.json", #"{"CALLBACK_PROT": 7001}"#)
        #expect(misspelt?.contains("\"CALLBACK_PROT\" is not a setting") == true, "\(misspelt ?? "accepted")")
        let yamlMisspelt = try refusal("a.yml", "CALLBACK_PROT: 7001\n")
        #expect(yamlMisspelt?.contains("\"CALLBACK_PROT\" is not a setting") == true, "\(yamlMisspelt ?? "accepted")")
        #expect(try refusal("a.json", "[1, 2]")?.contains("not a JSON object of settings") == true)
        // A parser's message may quote the file; the refusal never does.
        let broken = try refusal("a.yaml", "TWILIO_API_SECRET: [unclosed-secret-value\n")
        #expect(broken?.contains("not a YAML mapping of settings") == true, "\(broken ?? "accepted")")
        #expect(broken?.contains("unclosed-secret-value") == false)
        #expect(try refusal("a.toml", "CALLBACK_PORT = 1")?.contains(".json, .yaml or .yml") == true)
        let missing = "/nonexistent/agent-payments.json"
        #expect(throws: ConfigurationError.self) { try Settings(commandLine: [.configFile: missing], environment: [:]) }
    }

    @Test func mistakesSayWhichSettingAndWhatItMustBe() {
        func error(_ environment: [String: String]) -> String? {
            do throws(ConfigurationError) {
                _ = try ServerConfiguration.load(
                    Settings(commandLine: [:], environment: environment), simulate: true)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(
            error(["CALLBACK_PORT": "soon"])
                == "CALLBACK_PORT must be a port number between 0 and 65535 (0 picks a free one), got \"soon\"")
        #expect(
            error(["AGENT_PAYMENTS_IDLE_TIMEOUT_MS": "0"])
                == "AGENT_PAYMENTS_IDLE_TIMEOUT_MS must be a positive integer, got \"0\"")
        #expect(
            error(["AGENT_PAYMENTS_LOG_LEVEL": "loud"])?.hasPrefix("AGENT_PAYMENTS_LOG_LEVEL must be one of") == true)
        #expect(error(["SECURITY_CODE": "maybe"]) == "SECURITY_CODE must be true or false, got \"maybe\"")
        #expect(error([:]) == nil)
    }

    /// TWILIO_REGION and TWILIO_EDGE pick Twilio's regional host (issue 29); a bad name or a
    /// combination that is rarely meant is refused with the setting's name.
    @Test func aRegionAndAnEdgePickTwiliosHost() throws {
        let live = [
            "TWILIO_ACCOUNT_SID": "AC" + String(repeating: "a1", count: 16),
            "TWILIO_API_KEY": "SK" + String(repeating: "b2", count: 16), "TWILIO_API_SECRET": "secret",
            "CALLBACK_BASE_URL": "https://pay.example.com",
        ]
        func load(_ more: [String: String]) throws(ConfigurationError) -> URL? {
            let environment = live.merging(more) { $1 }
            let configuration = try ServerConfiguration.load(
                Settings(commandLine: [:], environment: environment), simulate: false)
            guard case .live(_, let baseURL) = configuration.payments.twilio else { return nil }
            return baseURL
        }
        func refusal(_ more: [String: String]) -> String? {
            do throws(ConfigurationError) {
                _ = try load(more)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(try load([:])?.absoluteString == "https://api.twilio.com")
        #expect(try load(["TWILIO_REGION": "ie1"])?.absoluteString == "https://api.dublin.ie1.twilio.com")
        #expect(
            try load(["TWILIO_REGION": "AU1", "TWILIO_EDGE": "sydney"])?.absoluteString
                == "https://api.sydney.au1.twilio.com")
        #expect(
            refusal(["TWILIO_REGION": "de1"])
                == "TWILIO_REGION must be one of us1, ie1, au1 (Twilio's Payment resource is not available in de1), "
                + "got \"de1\"")
        #expect(
            refusal(["TWILIO_REGION": "ie1", "TWILIO_EDGE": "paris"])?.hasPrefix("TWILIO_EDGE must be one of") == true)
        #expect(refusal(["TWILIO_EDGE": "dublin"])?.contains("US1 through dublin") == true)
        #expect(
            refusal(["TWILIO_REGION": "ie1", "TWILIO_API_BASE_URL": "http://127.0.0.1:9"])
                == "TWILIO_API_BASE_URL must be unset when TWILIO_REGION names the host (api.dublin.ie1.twilio.com), "
                + "got \"http://127.0.0.1:9\"")
    }

    @Test func listenerLimitsComeFromTheSettings() throws {
        let configuration = try ServerConfiguration.load(
            Settings(
                commandLine: [:],
                environment: [
                    "AGENT_PAYMENTS_HEAD_TIMEOUT_MS": "2500", "AGENT_PAYMENTS_MAX_CONNECTIONS": "77",
                    "AGENT_PAYMENTS_WRITE_TIMEOUT_MS": "1500", "AGENT_PAYMENTS_MAX_PIPELINED_REQUESTS": "3",
                ]), simulate: true)
        let limits = configuration.listener.limits
        #expect(limits.headTimeout == .milliseconds(2500) && limits.maximumConnections == 77)
        #expect(limits.writeTimeout == .milliseconds(1500) && limits.maximumPipelinedRequests == 3)
        #expect(limits.idleTimeout == .seconds(15))
    }

    @Test func metricsAreServedOnTheListenerOnAPortOfTheirOwnOrNotAtAll() throws {
        func destination(_ value: String?) throws -> ServerConfiguration.MetricsDestination {
            let environment = value.map { ["AGENT_PAYMENTS_METRICS": $0] } ?? [:]
            return try ServerConfiguration.load(Settings(commandLine: [:], environment: environment), simulate: true)
                .metrics
        }
        #expect(try destination(nil) == .listener)
        #expect(try destination("off") == .off)
        #expect(try destination("9464") == .separate(host: "127.0.0.1", port: 9464))
        #expect(try destination("[::1]:9464") == .separate(host: "::1", port: 9464))
        #expect(throws: ConfigurationError.self) { try destination("metrics.example:port") }
    }

    @Test func withSimulateARegionIsTheHostTheSimulatorPlaysAndRecordingsArePausedWhenAsked() throws {
        func simulated(_ environment: [String: String]) throws -> (host: String?, pause: String) {
            let configuration = try ServerConfiguration.load(
                Settings(commandLine: [:], environment: environment), simulate: true)
            guard case .simulated(let simulator, _) = configuration.payments.twilio else { return (nil, "") }
            return (simulator.host, configuration.payments.pauseRecordings.rawValue)
        }
        #expect(try simulated([:]) == (nil, "off"))
        #expect(
            try simulated(["TWILIO_REGION": "au1", "AGENT_PAYMENTS_PAUSE_RECORDINGS": "required"])
                == ("api.sydney.au1.twilio.com", "required"))
        #expect(throws: ConfigurationError.self) { try simulated(["TWILIO_REGION": "us2"]) }
        #expect(throws: ConfigurationError.self) { try simulated(["AGENT_PAYMENTS_PAUSE_RECORDINGS": "sometimes"]) }
    }

    @Test func theAuditTrailGoesToTheDatabaseWhenThereIsOneElseToStandardError() throws {
        func destination(_ environment: [String: String]) throws -> ServerConfiguration.AuditDestination {
            try ServerConfiguration.load(Settings(commandLine: [:], environment: environment), simulate: true).audit
        }
        let database = "postgres://user:password@127.0.0.1:5432/payments"
        #expect(try destination([:]) == .standardError)
        #expect(try destination(["DATABASE_URL": database]) == .database)
        #expect(try destination(["DATABASE_URL": database, "AGENT_PAYMENTS_AUDIT": "stderr"]) == .standardError)
        #expect(
            try destination(["AGENT_PAYMENTS_AUDIT": "/var/log/payments-audit.jsonl"])
                == .file("/var/log/payments-audit.jsonl"))
        #expect(try destination(["AGENT_PAYMENTS_AUDIT": "off"]) == .off)
        #expect(throws: ConfigurationError.self) { try destination(["AGENT_PAYMENTS_AUDIT": "database"]) }
        let named = try ServerConfiguration.load(
            Settings(commandLine: [:], environment: ["AGENT_PAYMENTS_REPLICA": "payments-7"]), simulate: true)
        #expect(named.payments.replica == "payments-7" && named.startRecord.replica == "payments-7")
        #expect(
            try ServerConfiguration.load(Settings(commandLine: [:], environment: [:]), simulate: true).payments.replica
                .contains("-"))
    }

    @Test func credentialsFromTheCommandLineAndSecretsNeverShown() throws {
        let secret = "s3cr3t-api-secret-value-0123456789"
        let settings = try Settings(
            commandLine: [
                .accountSID: "AC" + String(repeating: "a", count: 32),
                .apiKey: "SK" + String(repeating: "b", count: 32),
                .apiSecret: secret,
            ],
            environment: [
                "CALLBACK_BASE_URL": "https://pay.example.com", "TWILIO_AUTH_TOKEN": "auth-token-value-0123456789",
                "AGENT_PAYMENTS_WEBHOOK_URL": "https://hooks.example.com/pay",
                "AGENT_PAYMENTS_WEBHOOK_SECRET": "whsec_" + Data(repeating: 7, count: 32).base64EncodedString(),
            ])
        let configuration = try ServerConfiguration.load(settings, simulate: false)
        #expect(!configuration.simulated && configuration.secrets.contains(secret))
        #expect(configuration.webhooks?.endpoints.map(\.name) == ["default"])
        let report = settings.report()
        for hidden in [secret, "auth-token-value-0123456789", "whsec_"] {
            #expect(!report.contains(hidden), "\(hidden) shown")
        }
        let line = try #require(settings.lines().first { $0.name == "TWILIO_API_SECRET" })
        #expect(line == .init(name: "TWILIO_API_SECRET", shown: Settings.redacted, origin: "command line"))
        #expect(report.contains("CALLBACK_BASE_URL") && report.contains("https://pay.example.com"))
    }

    @Test func everySettingIsDeclaredOnceWithAKeyTheEnvironmentSpells() {
        #expect(Set(Setting.all.map(\.name)).count == Setting.all.count)
        for setting in Setting.all {
            #expect(setting.key.components.joined(separator: "_").uppercased() == setting.name)
            if setting.isSecret { #expect(setting.defaultValue == nil, "\(setting) has a secret default") }
        }
    }

    /// The environment is read for the settings in `Setting.all` only: one declared and left out
    /// of the list would be ignored there.
    @Test func everyDeclaredSettingIsListed() throws {
        let source = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(
                    "Sources/PaymentsSettings/Setting+Declaration.swift"),
            encoding: .utf8)
        let declared = source.components(separatedBy: "public static let ").dropFirst()
            .filter { $0.contains("= Setting(") && $0.components(separatedBy: "\n")[0].hasSuffix("= Setting(") }
            .map { String($0.prefix { $0 != " " }) }
        #expect(declared.count == Setting.all.count, "declared: \(declared.count), listed: \(Setting.all.count)")
        #expect(declared.count > 50)
    }

    @Test func tracesAreExportedWhenAnOTLPEndpointIsNamedOverHTTPOnly() throws {
        #expect(try ServerConfiguration.tracingEnvironment(["OTEL_SERVICE_NAME": "x"]) == nil)
        let endpoint = "http://collector:4318"
        let traced = try #require(
            try ServerConfiguration.tracingEnvironment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "pay", "PATH": "/bin",
            ]))
        #expect(traced == ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "pay"])
        #expect(try ServerConfiguration.tracingEnvironment(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint]) != nil)
        for off in [
            ["OTEL_SDK_DISABLED": "true"], ["OTEL_TRACES_EXPORTER": "none"], ["OTEL_EXPORTER_OTLP_ENDPOINT": " "],
        ] {
            let environment = ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint].merging(off) { $1 }
            #expect(try ServerConfiguration.tracingEnvironment(environment) == nil, "\(off)")
        }
        // gRPC is not built in: refused with the variable's name, not left to stop the process.
        #expect(throws: ConfigurationError.self) {
            try ServerConfiguration.tracingEnvironment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            ])
        }
        // The traces' own protocol wins over the general one.
        #expect(
            try ServerConfiguration.tracingEnvironment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            ]) != nil)
    }

    @Test func anEnvironmentVariableThatIsASettingIsReadAndOneThatIsNotIsNot() throws {
        let settings = try Settings(
            credentials: [], simulate: true, options: [:],
            environment: ["AGENT_PAYMENTS_LOG_LEVEL": "debug", "AGENT_PAYMENTS_NOT_A_SETTING": "x"])
        #expect(settings.value(.logLevel) == "debug")
        #expect(settings.origin(of: .logLevel) == .environment)
    }
}
