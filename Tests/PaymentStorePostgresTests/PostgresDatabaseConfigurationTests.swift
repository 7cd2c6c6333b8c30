import Logging
import Synchronization
import Testing
@testable import PaymentStorePostgres

/// `DATABASE_URL` and TLS: a server on another machine is reached only with an `sslmode`
/// written out, and `verify-full` checks the certificate and the name. No server needed.
@Suite struct PostgresDatabaseConfigurationTests {
    @Test(arguments: [
        "db.internal", "10.0.0.5", "[2001:db8::1]", "128.0.0.1", "127.0.0.1.nip.io", "localhost.example.com", "[::2]",
    ])
    func aRemoteServerWithoutSSLModeIsRefusedNamingTheFix(host: String) {
        #expect {
            try PostgresDatabaseConfiguration(url: "postgres://payments:hunter2@\(host):5432/payments?pool_max=4")
        } throws: { error in
            let text = "\(error)"
            return text.contains("without sslmode") && text.contains("sslmode=verify-full") && !text.contains("hunter2")
        }
    }

    @Test(arguments: [
        "127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "[::1]", "[::ffff:127.0.0.1]", "%2Fvar%2Frun%2Fpostgresql",
    ])
    func aLocalServerWithoutSSLModeIsAcceptedAsBefore(host: String) throws {
        let configuration = try PostgresDatabaseConfiguration(url: "postgres://payments:pw@\(host)/payments")
        #expect(configuration.isLocal && configuration.sslMode == nil && configuration.tls == .prefer)
    }

    @Test(arguments: [
        ("verify-full", true), ("verify-ca", true), ("require", true), ("prefer", false), ("allow", false),
        ("disable", false),
    ])
    func anSSLModeWrittenOutIsTheOperatorsChoice(mode: String, verifies: Bool) throws {
        let configuration = try PostgresDatabaseConfiguration(
            url: "postgres://payments:pw@db.internal:5432/payments?sslmode=\(mode)")
        #expect(!configuration.isLocal && configuration.sslMode == mode && configuration.verifiesServer == verifies)
        #expect(configuration.description == "postgres://payments:…@db.internal:5432/payments?sslmode=\(mode)")
    }

    @Test func verifyFullChecksTheCertificateChainAndTheName() throws {
        let strict = try PostgresDatabaseConfiguration(
            url: "postgres://payments:pw@db.internal/payments?sslmode=verify-full")
        let settings = try #require(strict.tlsConfiguration())
        #expect(
            settings.certificateVerification == .fullVerification, "chain and host name (db.internal, also sent as SNI)"
        )
        #expect(settings.trustRoots == .default)
        #expect(strict.clientConfiguration().options.tlsServerName == nil, "so PostgresNIO names the URL's host")
        let loose = try PostgresDatabaseConfiguration(url: "postgres://payments:pw@127.0.0.1/payments")
        let unverified = try #require(loose.tlsConfiguration())
        #expect(unverified.certificateVerification == .none, "prefer, as libpq: TLS if offered, the server unverified")
        #expect(
            try PostgresDatabaseConfiguration(url: "postgres://p@db.internal/x?sslmode=disable").tlsConfiguration()
                == nil)
    }

    @Test(arguments: [
        ("postgres://p@db.internal/x?sslmode=disable", true), ("postgres://p@db.internal/x?sslmode=prefer", true),
        ("postgres://p@db.internal/x?sslmode=verify-full", false), ("postgres://p@127.0.0.1/x?sslmode=disable", false),
    ])
    func anUnverifiedRemoteServerIsAWarning(url: String, warned: Bool) throws {
        let warnings = Warnings()
        let logger = Logger(label: "test") { _ in WarningRecorder(warnings: warnings) }
        _ = PostgresPaymentDatabase(configuration: try PostgresDatabaseConfiguration(url: url), logger: logger)
        #expect(warnings.texts.contains { $0.contains("does not verify the server") } == warned)
    }
}

/// The texts of the warnings logged.
final class Warnings: Sendable {
    private let recorded = Mutex<[String]>([])
    func append(_ text: String) { recorded.withLock { $0.append(text) } }
    var texts: [String] { recorded.withLock { $0 } }
}

/// Keeps the text of every warning.
struct WarningRecorder: LogHandler {
    let warnings: Warnings
    var logLevel: Logger.Level = .warning
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level == .warning { warnings.append("\(event.message)") }
    }
}
