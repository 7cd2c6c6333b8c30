import Foundation
import PostgresNIO
import NIOSSL

/// Where the PostgreSQL database is and how to reach it, from a `postgres://` URL (what
/// `DATABASE_URL` holds), with the bounds this library keeps.
///
/// The URL is `postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE` (`postgresql://` too;
/// user, password, port and database are optional; the user and password percent-encoded).
/// `sslmode` follows libpq's names: `disable`; `prefer` (the default: TLS when the server
/// offers it, unverified as libpq does, so a loopback server without TLS just works);
/// `require`, `verify-ca` and `verify-full` all require TLS and verify the server's certificate
/// and name against the system's roots (stricter than libpq's `require`, which checks nothing).
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

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String? = nil,
                tls: TLSMode = .prefer, maximumConnections: Int = 10, connectTimeout: Duration = .seconds(3),
                requestTimeout: Duration = .seconds(2)) {
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
              scheme == "postgres" || scheme == "postgresql" else {
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
        var pool = 10
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw PostgresConfigurationError("has sslmode=\(item.value ?? ""); use disable, prefer, require, verify-ca or verify-full")
                }
            case "pool_max":
                guard let value = item.value.flatMap(Int.init), (1...1000).contains(value) else {
                    throw PostgresConfigurationError("has pool_max=\(item.value ?? ""); use a number of connections from 1 to 1000")
                }
                pool = value
            default:
                throw PostgresConfigurationError("has the parameter \(item.name), which this server does not know (sslmode and pool_max are)")
            }
        }
        self.init(host: host, port: components.port ?? 5432, username: user,
                  password: components.password.map { $0.removingPercentEncoding ?? $0 },
                  database: path.isEmpty ? nil : (path.removingPercentEncoding ?? path), tls: tls, maximumConnections: pool)
    }

    /// The URL without its password: what logs and errors show.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":…")@\(host):\(port)/\(database ?? "")?sslmode=\(tls.rawValue)"
    }

    /// The pool's configuration.
    func clientConfiguration() -> PostgresClient.Configuration {
        let mode: PostgresClient.Configuration.TLS
        switch tls {
        case .disable: mode = .disable
        case .prefer:
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            mode = .prefer(unverified)
        case .require: mode = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password,
                                                         database: database, tls: mode)
        configuration.options.maximumConnections = maximumConnections + 1  // the LISTEN connection
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
