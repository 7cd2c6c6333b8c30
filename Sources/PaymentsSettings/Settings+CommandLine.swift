import Foundation

extension Settings {
    /// The settings of a server run: the seed's positional credentials (account SID, API key
    /// SID, API secret), or none with `simulate`; the options given on the command line (by
    /// setting); the environment; and the configuration file either names.
    public convenience init(
        credentials: [String], simulate: Bool, options: [Setting: String?], environment: [String: String]
    ) throws(ConfigurationError) {
        var commandLine = options.compactMapValues { $0 }
        switch credentials.count {
        case 0: break
        case 3 where !simulate:
            (commandLine[.accountSID], commandLine[.apiKey], commandLine[.apiSecret]) =
                (credentials[0], credentials[1], credentials[2])
        case _ where simulate: throw .simulateTakesNoCredentials
        default: throw .wrongArgumentCount(credentials.count)
        }
        try self.init(commandLine: commandLine, environment: environment)
    }

    /// Whether `arguments`, the environment or the configuration file ask for MCP over HTTP: read
    /// before anything starts (so that NIO's event loops can become the executor). A mistake in
    /// them reads as no; the command that reads them reports it.
    public static func servesHTTP(arguments: [String], environment: [String: String]) -> Bool {
        if arguments.contains(where: { $0 == "--http" || $0.hasPrefix("--http=") }) { return true }
        var file: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--config", index + 1 < arguments.count { file = arguments[index + 1] }
            if argument.hasPrefix("--config=") { file = String(argument.dropFirst("--config=".count)) }
        }
        // Without a file, the environment alone tells (and no reader is built twice at a cold start).
        guard file != nil || environment[Setting.configFile.name] != nil else {
            return !(environment[Setting.http.name]?.trimmed.isEmpty ?? true)
        }
        let settings = try? Settings(commandLine: file.map { [.configFile: $0] } ?? [:], environment: environment)
        return settings?.isSet(.http) ?? false
    }
}

extension ServerConfiguration {
    /// The configuration of the ways MCP clients start the server — no arguments, `--simulate`,
    /// or the three credentials — when it is valid; `nil` for anything else (an option, a
    /// command among `commands`, a mistake), which the command-line parser then takes, to
    /// print its usage or the mistake.
    public static func direct(
        arguments: [String], commands: Set<String>, environment: [String: String]
    ) -> ServerConfiguration? {
        let simulate = arguments == ["--simulate"]
        guard
            arguments.isEmpty || simulate
                || (arguments.count == 3 && !arguments.contains { $0.hasPrefix("-") || commands.contains($0) })
        else { return nil }
        return try? load(
            Settings(
                credentials: simulate ? [] : arguments, simulate: simulate, options: [:], environment: environment),
            simulate: simulate)
    }
}
