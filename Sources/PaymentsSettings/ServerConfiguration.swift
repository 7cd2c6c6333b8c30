import Foundation
public import ListenerGuard
public import PaymentEvents
import PaymentFlow
public import PaymentStorePostgres
public import PaymentsMCP
public import PaymentsService
public import TwilioPayments

/// Everything the server needs, read from ``Settings`` and checked once: the payments system's
/// configuration, the tools' defaults, and every secret (for the log redactor).
public struct ServerConfiguration: Sendable {
    public var payments: PaymentsConfiguration
    public var defaults: PaymentDefaults
    public var secrets: [String]
    /// MCP over Streamable HTTP instead of stdio (`--http`).
    public var http: HTTPSettings?
    /// The one HTTP listener's address and bounds: Twilio's callbacks, and `/mcp` with `--http`.
    public var listener = ListenerSettings()
    /// Sessions in PostgreSQL, shared with other replicas (`DATABASE_URL`); in memory without.
    public var database: PostgresDatabaseConfiguration?
    /// How long start-up waits for the database to be reachable.
    public var databaseStartTimeout: Duration = .seconds(30)
    /// The callback key every replica shares, when `AGENT_PAYMENTS_CALLBACK_KEY` gives it; with a
    /// database and without it, the key stored in the database.
    public var callbackKey: Secret?
    /// The longest a tool call takes, waits included (voice frameworks time tool calls out after 5 s).
    public var maximumWait: Duration = .milliseconds(Int64(PaymentsMCP.defaultMaximumWaitSeconds * 1000))
    /// How much is logged.
    public var logLevel: String = "info"
    /// Whether the logs on stderr are JSON lines (`AGENT_PAYMENTS_LOG_FORMAT=json`).
    public var logsJSON = false
    /// The `OTEL_*` variables traces are exported by, when they are exported (``otel``).
    public var tracing: [String: String]?
    /// Where the audit trail goes (`AGENT_PAYMENTS_AUDIT`).
    public var audit: AuditDestination = .standardError
    /// Where `/metrics` is served (`AGENT_PAYMENTS_METRICS`).
    public var metrics: MetricsDestination = .listener

    /// Where `/metrics` is served.
    public enum MetricsDestination: Sendable, Equatable {
        /// Nowhere, and nothing is counted (no metrics backend).
        case off
        /// On the one listener, beside the callbacks.
        case listener
        /// On a listener of its own.
        case separate(host: String, port: Int)
    }

    /// Where the audit trail goes.
    public enum AuditDestination: Sendable, Equatable, CustomStringConvertible {
        /// Nowhere.
        case off
        /// JSON lines on standard error, beside the logs (a new chain each start).
        case standardError
        /// JSON lines appended to a file, its chain continued across restarts.
        case file(String)
        /// The database's table, one chain for every replica.
        case database

        public var description: String {
            switch self {
            case .off: return "off"
            case .standardError: return "stderr"
            case .file(let path): return "file \(path)"
            case .database: return "database"
            }
        }
    }
    /// The HTTP header a voice platform sends the call's SID in; it supplies `callSid` to tool
    /// calls that omit it.
    public static let callSIDHeader = "X-Twilio-Call-Sid"

    /// Where payment events are pushed (Docs/voice-agents.md), if anywhere.
    public var webhooks: WebhookSettings?

    /// What makes an unauthenticated `/mcp` reachable from elsewhere, when
    /// `--allow-unauthenticated` let it start anyway (said loudly at start-up).
    public var unauthenticatedExposure: [String] = []

    /// Whether this runs against the built-in simulator.
    public var simulated: Bool {
        if case .simulated = payments.twilio { return true }
        return false
    }

    /// What makes `/mcp` reachable from beyond this machine, one sentence per setting: a bind
    /// address that is not loopback, a public URL (which a proxy forwards to the listener) whose
    /// host is not loopback, or a tunnel. Empty when only local processes can reach it.
    static func exposure(of http: HTTPSettings, publicURL: PaymentsConfiguration.PublicURL) -> [String] {
        var reasons: [String] = []
        if !HTTPSettings.isLoopback(http.host) {
            reasons.append("--http binds \(http.host), which other machines reach")
        }
        switch publicURL {
        case .explicit(let base):
            if let host = URL(string: base)?.host, !HTTPSettings.isLoopback(host) {
                reasons.append("CALLBACK_BASE_URL \(base) is a public URL that reaches this listener")
            }
        case .ngrok:
            reasons.append("NGROK_AUTH_TOKEN opens an ngrok tunnel to this listener")
        case .loopback, .provided:
            break
        }
        return reasons
    }

    static func audit(_ settings: Settings, database: Bool) throws(ConfigurationError) -> AuditDestination {
        switch settings.value(.audit) {
        case nil, "": return database ? .database : .standardError
        case "off": return .off
        case "stderr": return .standardError
        case "database":
            guard database else {
                throw .invalidValue(
                    variable: Setting.audit.name, value: "database", expected: "DATABASE_URL set, or stderr or a file")
            }
            return .database
        case let path?: return .file(path)
        }
    }

    /// The configuration `settings` make, or the first mistake in them.
    public static func load(
        _ settings: Settings, simulate: Bool, allowUnauthenticated: Bool = false
    ) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = try loadPayments(settings, simulate: simulate)
        configuration.logLevel = try settings.choice(
            .logLevel, among: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        configuration.logsJSON = try settings.choice(.logFormat, among: ["text", "json"]) == "json"
        configuration.payments.pauseRecordings =
            PaymentsConfiguration.RecordingPauseMode(
                rawValue: try settings.choice(.pauseRecordings, among: ["off", "on", "required"])) ?? .off
        configuration.audit = try audit(settings, database: settings.value(.databaseURL) != nil)
        configuration.tracing = try tracingEnvironment(settings.environment)
        switch settings.value(.metrics) {
        case nil, "": configuration.metrics = .listener
        case "off": configuration.metrics = .off
        case let address?:
            guard let (host, port) = HTTPSettings.parseAddress(address) else {
                throw .invalidValue(
                    variable: Setting.metrics.name, value: address,
                    expected: "off, or [HOST:]PORT such as 9464, 0.0.0.0:9464 or [::1]:9464")
            }
            configuration.metrics = .separate(host: host, port: port)
        }
        if let replica = settings.value(.replica), !replica.isEmpty { configuration.payments.replica = replica }
        configuration.payments.finishedRetention = .seconds(
            try settings.integer(
                .finishedRetention, in: 0...Int.max,
                expected: "a whole number of seconds (how long a finished session stays readable; default 3600)"))
        configuration.payments.strandedStartAfter = .seconds(
            try settings.integer(
                .strandedStart, in: 1...3600,
                expected:
                    "a whole number of seconds from 1 to 3600 (longer than a Twilio request's 20 s retry budget; default 30)"
            ))
        let wait = try settings.number(
            .maximumWait, in: 0.1...60,
            expected:
                "seconds between 0.1 and 60 (the longest a tool call waits; default 3, which fits a 5-second client timeout)"
        )
        configuration.maximumWait = .milliseconds(Int64(wait * 1000))
        configuration.payments.policy = try loadPolicy(settings)
        do {
            let webhooks = try WebhookEndpoints.load { name in
                Setting.named(name).flatMap { settings.isSet($0) ? settings.value($0) : nil }
            }
            if !webhooks.endpoints.isEmpty {
                configuration.webhooks = webhooks
                configuration.secrets += webhooks.endpoints.map(\.secret.encoded)
            }
        } catch {
            throw .invalidWebhooks(error.description)
        }
        if let database = try loadDatabase(settings) {
            configuration.database = database.configuration
            configuration.databaseStartTimeout = database.startTimeout
            if let password = database.configuration.password, !password.isEmpty {
                configuration.secrets.append(password)
            }
            if let key = database.callbackKey {
                configuration.callbackKey = key
                configuration.secrets.append(key.revealed)
            }
        }
        if settings.isSet(.http), let address = settings.value(.http) {
            let http = try HTTPSettings.load(address: address, settings: settings)
            // Closed by default: whatever makes /mcp reachable from elsewhere requires authentication.
            let exposure = Self.exposure(of: http, publicURL: configuration.payments.publicURL)
            if !http.authenticated, !exposure.isEmpty {
                guard allowUnauthenticated else { throw .unauthenticatedNetworkListener(reasons: exposure) }
                configuration.unauthenticatedExposure = exposure
            }
            // One listener: the callbacks arrive where MCP is served.
            configuration.listener.host = http.host
            configuration.listener.port = http.port
            configuration.secrets += http.tokens
            configuration.http = http
        }
        return configuration
    }

    /// The spending policy (Docs/configuration.md). Unset: no limit.
    static func loadPolicy(_ settings: Settings) throws(ConfigurationError) -> SpendingPolicy {
        func amount(_ setting: Setting) throws(ConfigurationError) -> Decimal? {
            guard settings.isSet(setting), let text = settings.value(setting) else { return nil }
            guard PaymentSessionOptions(chargeAmount: text).validate().isEmpty,
                let amount = SpendingPolicy.decimal(text), amount > 0
            else {
                throw .invalidValue(
                    variable: setting.name, value: text,
                    expected: "a decimal amount greater than 0, such as 500 or 99.90")
            }
            return amount
        }
        var policy = SpendingPolicy(maximumCharge: try amount(.maximumCharge), dailyLimit: try amount(.dailyLimit))
        if settings.isSet(.currencies), let text = settings.value(.currencies) {
            let codes = text.split(separator: ",").map { $0.trimmed.uppercased() }.filter {
                !$0.isEmpty
            }
            if codes.isEmpty || codes.contains(where: { !PaymentSessionOptions(currency: $0).validate().isEmpty }) {
                throw .invalidValue(
                    variable: Setting.currencies.name, value: text,
                    expected: "ISO 4217 codes separated by commas, such as USD,EUR")
            }
            policy.currencies = Set(codes)
        }
        policy.requireAmountDue = try settings.flag(.requireAmountDue)
        return policy
    }

    /// The database from `--database-url` or `DATABASE_URL`, its start-up wait, and a callback
    /// key given in `AGENT_PAYMENTS_CALLBACK_KEY` (else the one stored in the database is used).
    public static func loadDatabase(
        _ settings: Settings
    ) throws(ConfigurationError)
        -> (configuration: PostgresDatabaseConfiguration, startTimeout: Duration, callbackKey: Secret?)?
    {
        guard let text = settings.value(.databaseURL) else { return nil }
        let configuration: PostgresDatabaseConfiguration
        do {
            configuration = try PostgresDatabaseConfiguration(url: text)
        } catch {
            throw .invalidDatabaseURL(error.description)
        }
        let timeout = try settings.integer(.databaseStart, in: 0...Int.max, expected: "a whole number of seconds")
        var key: Secret?
        if let text = settings.raw(.callbackKey) {
            guard text.utf8.count >= 32 else {
                throw .invalidValue(
                    variable: Setting.callbackKey.name, value: "…",
                    expected: "at least 32 characters (the same in every replica)")
            }
            key = Secret(text)
        }
        return (configuration, .seconds(timeout), key)
    }

    /// The listener bounds (Docs/security.md, slow clients).
    static func loadLimits(_ settings: Settings) throws(ConfigurationError) -> ListenerLimits {
        var limits = ListenerLimits()
        func positive(_ setting: Setting) throws(ConfigurationError) -> Int? {
            guard settings.isSet(setting) || setting.defaultValue != nil else { return nil }
            return try settings.integer(setting, in: 1...Int.max, expected: "a positive integer")
        }
        if let value = try positive(.headTimeout) { limits.headTimeout = .milliseconds(value) }
        if let value = try positive(.minimumBodyRate) { limits.minimumBodyRate = value }
        if let value = try positive(.requestTimeout) { limits.requestTimeout = .milliseconds(value) }
        if let value = try positive(.idleTimeout) { limits.idleTimeout = .milliseconds(value) }
        if let value = try positive(.writeTimeout) { limits.writeTimeout = .milliseconds(value) }
        if let value = try positive(.maximumPipelinedRequests) { limits.maximumPipelinedRequests = value }
        if let value = try positive(.maximumConnections) { limits.maximumConnections = value }
        return limits
    }

    /// Twilio's API: `TWILIO_REGION` and `TWILIO_EDGE` (`https://api.{edge}.{region}.twilio.com`),
    /// or `TWILIO_API_BASE_URL` for a stand-in; not both, and `api.twilio.com` (US1) without any.
    static func apiBaseURL(_ settings: Settings) throws(ConfigurationError) -> URL {
        let endpoint: TwilioEndpoint?
        do {
            endpoint = try TwilioEndpoint.named(region: settings.value(.region), edge: settings.value(.edge))
        } catch {
            let setting = if case .unknownEdge = error { Setting.edge } else { Setting.region }
            throw .invalidValue(variable: setting.name, value: settings.value(setting) ?? "", expected: error.expected)
        }
        if let endpoint {
            if settings.isSet(.apiBaseURL), let base = settings.value(.apiBaseURL) {
                throw .invalidValue(
                    variable: Setting.apiBaseURL.name, value: base,
                    expected: "unset when \(Setting.region.name) names the host (\(endpoint.host))")
            }
            return endpoint.baseURL
        }
        let baseText = settings.value(.apiBaseURL) ?? TwilioPaymentsClient.defaultBaseURL.absoluteString
        guard let apiBaseURL = URL(string: baseText), let scheme = apiBaseURL.scheme,
            ["http", "https"].contains(scheme.lowercased()), apiBaseURL.host != nil
        else {
            throw .invalidValue(
                variable: Setting.apiBaseURL.name, value: baseText,
                expected: "an absolute URL such as https://api.twilio.com (for a region, set \(Setting.region.name))")
        }
        return apiBaseURL
    }

    private static func loadPayments(
        _ settings: Settings, simulate: Bool
    ) throws(ConfigurationError) -> ServerConfiguration {
        var defaults = PaymentDefaults()
        if let tokenType = settings.value(.tokenType) {
            guard let parsed = TokenType(rawValue: tokenType) else {
                throw .invalidValue(
                    variable: Setting.tokenType.name, value: tokenType,
                    expected: TokenType.allCases.map(\.rawValue).joined(separator: ", ").replacingLast(
                        ", ", with: " or "))
            }
            defaults.tokenType = parsed
        }
        if let currency = settings.value(.currency) {
            guard currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw .invalidValue(
                    variable: Setting.currency.name, value: currency,
                    expected: "a three-letter ISO 4217 code such as USD")
            }
            defaults.currency = currency.uppercased()
        }
        defaults.paymentConnector = settings.value(.paymentConnector)
        defaults.postalCode = try settings.flag(.postalCode)
        defaults.securityCode = try settings.flag(.securityCode)

        let limits = try loadLimits(settings)
        let host = settings.value(.callbackHost) ?? "127.0.0.1"
        let port = try settings.integer(
            .callbackPort, in: 0...65535, expected: "a port number between 0 and 65535 (0 picks a free one)")
        let listener = ListenerSettings(host: host, port: port, limits: limits)

        if simulate {
            let pacing = try settings.integer(.simulatorPacing, in: 0...Int.max, expected: "whole milliseconds")
            var payments = PaymentsConfiguration.simulated(
                digitPacing: .milliseconds(pacing),
                scripts: try settings.value(.simulatorScript).map(SimulatorScripts.load(path:)) ?? [:])
            // A region names the host the simulator plays, and the client's requests go to it.
            if settings.isSet(.region), case .simulated(var simulator, let scripts) = payments.twilio {
                simulator.host = try Self.apiBaseURL(settings).host
                payments.twilio = .simulated(simulator, scripts: scripts)
            }
            return ServerConfiguration(payments: payments, defaults: defaults, secrets: [], listener: listener)
        }

        guard let accountSID = settings.value(.accountSID), let apiKey = settings.value(.apiKey),
            let apiSecret = settings.raw(.apiSecret)
        else {
            throw .missingCredentials
        }
        let authToken = settings.value(.authToken)
        let credentials: TwilioCredentials
        do {
            credentials = try TwilioCredentials(
                accountSID: accountSID, apiKeySID: apiKey, apiSecret: apiSecret, authToken: authToken)
        } catch {
            throw .invalidCredentials(error.description)
        }

        let apiBaseURL = try Self.apiBaseURL(settings)

        let publicURL: PaymentsConfiguration.PublicURL
        if let base = settings.value(.callbackBaseURL) {
            guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), url.host != nil,
                scheme == "https" || scheme == "http"
            else {
                throw .invalidValue(
                    variable: Setting.callbackBaseURL.name, value: base,
                    expected: "the absolute https URL at which Twilio reaches this machine")
            }
            publicURL = .explicit(base)
        } else if let token = settings.value(.ngrokAuthToken) {
            // The agent's environment is drawn from this process's (only the basics reach it).
            publicURL = .ngrok(
                authToken: Secret(token), domain: settings.value(.ngrokDomain),
                environment: settings.environment)
        } else {
            throw .missingPublicURL
        }
        var secrets = [apiSecret]
        if let authToken { secrets.append(authToken) }
        if case .ngrok(let token, _, _, _) = publicURL { secrets.append(token.revealed) }
        let payments = PaymentsConfiguration(twilio: .live(credentials, baseURL: apiBaseURL), publicURL: publicURL)
        return ServerConfiguration(payments: payments, defaults: defaults, secrets: secrets, listener: listener)
    }
}

/// Where the one HTTP listener binds (`CALLBACK_HOST`/`CALLBACK_PORT`, or `--http`'s address),
/// and the bounds it keeps (it faces the internet through a tunnel or a proxy).
public struct ListenerSettings: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port.
    public var port = 0
    public var limits = ListenerLimits()

    public init(host: String = "127.0.0.1", port: Int = 0, limits: ListenerLimits = ListenerLimits()) {
        self.host = host
        self.port = port
        self.limits = limits
    }
}

extension String {
    /// The string with its last `separator` replaced ("a, b, c" → "a, b or c").
    fileprivate func replacingLast(_ separator: String, with replacement: String) -> String {
        guard let range = range(of: separator, options: .backwards) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
