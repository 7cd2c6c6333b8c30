import ArgumentParser
import Foundation
import PaymentsSettings

/// What `serve` and `config check` take on the command line. Each option is a setting's
/// (``Setting/option``); the settings are read from here, the environment and a configuration
/// file in one place (``Settings``).
struct ServeOptions: ParsableArguments {
    @Argument(
        help:
            "Account SID (AC…), API key SID (SK…) and API secret. Or set TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET."
    )
    var credentials: [String] = []

    @Flag(help: "Run against the built-in Twilio simulator: no account, no tunnel.")
    var simulate = false

    @Option(
        name: .customLong("http"),
        help: ArgumentHelp(
            "Serve MCP over Streamable HTTP at /mcp on [HOST:]PORT (host default 127.0.0.1), beside the Twilio callbacks, instead of stdio. Or set AGENT_PAYMENTS_HTTP.",
            valueName: "[HOST:]PORT"))
    var http: String?

    @Option(
        name: .customLong("http-tokens-file"),
        help: ArgumentHelp(
            "Bearer tokens for --http, one entry per line: TOKEN, NAME:TOKEN or NAME[@TENANT]:TOKEN:SCOPE SCOPE. Or set AGENT_PAYMENTS_HTTP_TOKENS (comma separated).",
            valueName: "PATH"))
    var tokensFile: String?

    @Flag(
        name: .customLong("allow-unauthenticated"),
        help:
            "Serve --http without tokens or OAuth although others can reach it (a non-loopback bind, CALLBACK_BASE_URL, a tunnel). Test benches only."
    )
    var allowUnauthenticated = false

    @OptionGroup var database: DatabaseOptions

    /// The settings the command line, the environment and a configuration file make.
    func settings() throws(ConfigurationError) -> Settings {
        try Self.settings(
            credentials: credentials, simulate: simulate,
            options: [
                .http: http, .httpTokensFile: tokensFile, .databaseURL: database.databaseURL,
                .configFile: database.config,
            ])
    }

    /// The configuration these options make, or the first mistake as a usage error.
    func load() throws(ValidationError) -> ServerConfiguration {
        do {
            return try ServerConfiguration.load(
                settings(), simulate: simulate, allowUnauthenticated: allowUnauthenticated)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The configuration for the parser-less start (`agent-payments`, `--simulate`, or the three
    /// credentials).
    static func load(credentials: [String], simulate: Bool) throws(ConfigurationError) -> ServerConfiguration {
        try ServerConfiguration.load(
            settings(credentials: credentials, simulate: simulate, options: [:]), simulate: simulate)
    }

    static func settings(
        credentials: [String], simulate: Bool, options: [Setting: String?]
    ) throws(ConfigurationError) -> Settings {
        var commandLine = options.compactMapValues { $0 }
        switch credentials.count {
        case 0: break
        case 3 where !simulate:
            (commandLine[.accountSID], commandLine[.apiKey], commandLine[.apiSecret]) =
                (credentials[0], credentials[1], credentials[2])
        case _ where simulate: throw .simulateTakesNoCredentials
        default: throw .wrongArgumentCount(credentials.count)
        }
        return try Settings(commandLine: commandLine, environment: ProcessInfo.processInfo.environment)
    }
}
