public import ArgumentParser
import Foundation
import Synchronization
public import PaymentsSettings

/// What `serve` and `config check` take on the command line. Each option is a setting's
/// (``Setting/option``); the settings are read from here, the environment and a configuration
/// file in one place (``Settings``).
public struct ServeOptions: ParsableArguments {
    @Argument(
        help:
            "Account SID (AC…), API key SID (SK…) and API secret. Or set TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET."
    )
    public var credentials: [String] = []

    @Flag(help: "Run against the built-in Twilio simulator: no account, no tunnel.")
    public var simulate = false

    @Option(
        name: .customLong("http"),
        help: ArgumentHelp(
            "Serve MCP over Streamable HTTP at /mcp on [HOST:]PORT (host default 127.0.0.1), beside the Twilio callbacks, instead of stdio. Or set AGENT_PAYMENTS_HTTP.",
            valueName: "[HOST:]PORT"))
    public var http: String?

    @Option(
        name: .customLong("http-tokens-file"),
        help: ArgumentHelp(
            "Bearer tokens for --http, one entry per line: TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE. Or set AGENT_PAYMENTS_HTTP_TOKENS (comma separated).",
            valueName: "PATH"))
    public var tokensFile: String?

    @Flag(
        name: .customLong("allow-unauthenticated"),
        help:
            "Serve --http without tokens or OAuth although others can reach it (a non-loopback bind, CALLBACK_BASE_URL, a tunnel). Test benches only."
    )
    public var allowUnauthenticated = false

    @OptionGroup public var database: DatabaseOptions

    public init() {}

    /// The settings the command line, `environment` and a configuration file make.
    public func settings(environment: [String: String]) throws(ConfigurationError) -> Settings {
        try Settings(
            credentials: credentials, simulate: simulate,
            options: [
                .http: http, .httpTokensFile: tokensFile, .databaseURL: database.databaseURL,
                .configFile: database.config,
            ], environment: environment)
    }

    /// The configuration these options and `environment` make, or the first mistake as a usage error.
    ///
    /// The last configuration made is kept for the same options and environment: a command
    /// loads it in `validate()`, for a usage error in the command's own terms, and again in
    /// `run()`, and reading every setting through swift-configuration's providers twice cost
    /// a millisecond of the server's start.
    public func load(environment: [String: String]) throws(ValidationError) -> ServerConfiguration {
        let key = LoadKey(
            credentials: credentials, simulate: simulate, http: http, tokensFile: tokensFile,
            allowUnauthenticated: allowUnauthenticated, databaseURL: database.databaseURL, config: database.config,
            environment: environment)
        if let last = Self.lastLoad.withLock({ $0 }), last.key == key { return last.configuration }
        do {
            let configuration = try ServerConfiguration.load(
                settings(environment: environment), simulate: simulate, allowUnauthenticated: allowUnauthenticated)
            Self.lastLoad.withLock { $0 = (key, configuration) }
            return configuration
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// Everything a configuration is made from.
    private struct LoadKey: Equatable, Sendable {
        var credentials: [String]
        var simulate: Bool
        var http, tokensFile: String?
        var allowUnauthenticated: Bool
        var databaseURL, config: String?
        var environment: [String: String]
    }

    private static let lastLoad = Mutex<(key: LoadKey, configuration: ServerConfiguration)?>(nil)
}
