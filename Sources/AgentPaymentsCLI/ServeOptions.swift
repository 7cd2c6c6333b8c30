public import ArgumentParser
import Foundation
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
    public func load(environment: [String: String]) throws(ValidationError) -> ServerConfiguration {
        do {
            return try ServerConfiguration.load(
                settings(environment: environment), simulate: simulate, allowUnauthenticated: allowUnauthenticated)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
