import Foundation
import PostgresNIO
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the PostgreSQL database is and how to reach it, from a `postgres://` URL (what
/// `DATABASE_URL` holds), with the bounds this library keeps.
///
/// The URL is `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE` (`postgresql://` too;
/// user, password, port and database are optional; the user and password percent-encoded).
/// `sslmode` follows libpq's names: `disable`; `prefer` (the default: TLS when the server
/// offers it, unverified as libpq does, so a loopback server without TLS just works);
/// `require`, `verify-ca` and `verify-full` all require TLS and verify the server's certificate
/// and name against the system's roots (stricter than libpq's `require`, which checks nothing).
///
/// A server that is not on this machine (see ``isLocal``) needs `sslmode` written out: without
/// it the URL is refused, since the default would not verify who answers. `verify-full` is the
/// choice to make; a weaker mode written on purpose is accepted, and ``PostgresPaymentDatabase``
/// logs a warning when it leaves the server unverified.
public struct PostgresDatabaseConfiguration: Sendable, CustomStringConvertible {
    /// TLS as `sslmode` asks.
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String?
    public var tls: TLSMode
    /// The `sslmode` the URL named, as written; `nil` when it named none (``tls`` is then the
    /// default, `prefer`).
    public var sslMode: String?
    /// Connections the pool may open for queries (one more is held for LISTEN).
    public var maximumConnections: Int
    /// How long a connection attempt may take.
    public var connectTimeout: Duration
    /// How long a store request may wait for its answer (a connection included) before it fails
    /// with a clear, retryable error: what a tool call or a callback waits at most while the
    /// server is away. (The pool itself would queue requests for a minute.) Two seconds by
    /// default, inside a tool call's budget (3 s, `AGENT_PAYMENTS_MAX_WAIT_SECONDS`), so that an
    /// agent hears `store-unavailable` rather than a call still pending.
    public var requestTimeout: Duration
    /// The clock ``requestTimeout`` is measured on: the continuous clock, or a test's own (a
    /// manual clock proves the bound without waiting for it).
    public var timeoutClock: any Clock<Duration> = ContinuousClock()

    public init(
        host: String, port: Int = 5432, username: String, password: String? = nil, database: String? = nil,
        tls: TLSMode = .prefer, maximumConnections: Int = 10, connectTimeout: Duration = .seconds(3),
        requestTimeout: Duration = .seconds(2)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.maximumConnections = maximumConnections
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
    }

    /// Reads a `postgres://` URL. The error never repeats the password.
    public init(url text: String) throws(PostgresConfigurationError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw PostgresConfigurationError("must be a URL such as postgres://user:password@host:5432/database")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresConfigurationError("names no host (postgres://user:password@HOST:5432/database)")
        }
        guard let user = components.user.map({ $0.removingPercentEncoding ?? $0 }), !user.isEmpty else {
            throw PostgresConfigurationError("names no user (postgres://USER:password@host:5432/database)")
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        var tls = TLSMode.prefer
        var sslMode: String?
        var pool = 10
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                sslMode = item.value ?? ""
                switch item.value ?? "" {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default:
                    throw PostgresConfigurationError(
                        "has sslmode=\(item.value ?? ""); use disable, prefer, require, verify-ca or verify-full")
                }
            case "pool_max":
                guard let value = item.value.flatMap(Int.init), (1...1000).contains(value) else {
                    throw PostgresConfigurationError(
                        "has pool_max=\(item.value ?? ""); use a number of connections from 1 to 1000")
                }
                pool = value
            default:
                throw PostgresConfigurationError(
                    "has the parameter \(item.name), which this server does not know (sslmode and pool_max are)")
            }
        }
        self.init(
            host: host, port: components.port ?? 5432, username: user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: path.isEmpty ? nil : (path.removingPercentEncoding ?? path), tls: tls, maximumConnections: pool)
        self.sslMode = sslMode
        if sslMode == nil, !isLocal {
            throw PostgresConfigurationError(
                "names the server \(host), which is not on this machine, without sslmode, and by default the "
                    + "connection would not verify who answers; add sslmode=verify-full to the URL's query so that the server's certificate "
                    + "and name are checked (or write the weaker sslmode you mean, such as require or disable, to accept the risk)"
            )
        }
    }

    /// Whether the server is on this machine: `localhost`, an address in 127.0.0.0/8, `::1`
    /// (also written as an IPv4-mapped address), or a Unix socket path (`/…`). Names are not
    /// resolved: any other name is taken as another machine.
    public var isLocal: Bool { Self.isLocal(host) }

    /// Whether the connection checks the server's certificate and name (`require`, `verify-ca`
    /// and `verify-full` here).
    public var verifiesServer: Bool { tls == .require }

    static func isLocal(_ host: String) -> Bool {
        var name = (host.removingPercentEncoding ?? host).lowercased()
        if name.hasPrefix("/") { return true }
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "localhost" || name == "localhost." { return true }
        var ipv4 = in_addr()
        if inet_pton(AF_INET, name, &ipv4) == 1 {
            return UInt32(bigEndian: ipv4.s_addr) >> 24 == 127
        }
        var ipv6 = in6_addr()
        guard inet_pton(AF_INET6, name, &ipv6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: ipv6) { Array($0) }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        // ::ffff:127.x.x.x
        return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// The URL without its password: what logs and errors show.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":…")@\(host):\(port)/\(database ?? "")?sslmode=\(sslMode ?? tls.rawValue)"
    }

    /// The TLS settings connections use, `nil` without TLS: unverified for `prefer`, else the
    /// client defaults, which verify the server's certificate chain against the system's roots
    /// and its name (the URL's host, also sent as SNI; an IP address is matched against the
    /// certificate's IP addresses).
    func tlsConfiguration() -> TLSConfiguration? {
        switch tls {
        case .disable: return nil
        case .prefer:
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            return unverified
        case .require: return .makeClientConfiguration()
        }
    }

    /// The pool's configuration.
    func clientConfiguration() -> PostgresClient.Configuration {
        let mode: PostgresClient.Configuration.TLS
        switch (tls, tlsConfiguration()) {
        case (.prefer, let settings?): mode = .prefer(settings)
        case (.require, let settings?): mode = .require(settings)
        default: mode = .disable
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password,
            database: database, tls: mode)
        configuration.options.maximumConnections = maximumConnections + 1 // the LISTEN connection
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = connectTimeout
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(15))
        return configuration
    }
}

/// Why a database URL cannot be used: the sentence completes "DATABASE_URL …".
public struct PostgresConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
