import Foundation
import ListenerGuard
import PaymentEvents
import PaymentFlow
import PaymentStorePostgres
import PaymentsMCP
import PaymentsService
import TwilioPayments
import TwilioSimulator

/// Why the command line and environment do not make a configuration: one case per mistake,
/// each with a sentence that says what to do.
enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case missingCredentials
    case wrongArgumentCount(Int)
    case simulateTakesNoCredentials
    /// A variable's value is not one it can take; `expected` says what it can.
    case invalidValue(variable: String, value: String, expected: String)
    case invalidCredentials(String)
    case missingPublicURL
    case invalidScript(String)
    /// `--http` that others can reach (each reason names the setting that exposes it), with
    /// neither tokens nor OAuth.
    case unauthenticatedNetworkListener(reasons: [String])
    /// `DATABASE_URL` (or `--database-url`) cannot be used; the sentence completes "DATABASE_URL …".
    case invalidDatabaseURL(String)
    /// `migrate` without a database.
    case missingDatabaseURL
    /// The webhook endpoints cannot be used; the sentence says why (never a secret).
    case invalidWebhooks(String)

    var description: String {
        switch self {
        case .missingCredentials:
            return """
                Twilio credentials are missing. Pass them as arguments (agent-payments <accountSid> <apiKey> <apiSecret>) or \
                set TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET (which keeps the secret out of ps). To try the \
                server without an account, run agent-payments --simulate, or agent-payments demo.
                """
        case .wrongArgumentCount(let count):
            return "expected three arguments, <accountSid> <apiKey> <apiSecret>, got \(count)"
        case .simulateTakesNoCredentials:
            return
                "--simulate runs against the built-in simulator and takes no credentials; remove them, or drop --simulate"
        case .invalidValue(let variable, let value, let expected):
            return "\(variable) must be \(expected), got \"\(value)\""
        case .invalidCredentials(let reason):
            return reason
        case .missingPublicURL:
            return """
                Twilio needs a public URL for its status callbacks. Either set CALLBACK_BASE_URL to the https URL that reaches \
                this machine's callback port (CALLBACK_PORT), or set NGROK_AUTH_TOKEN (and optionally NGROK_CUSTOM_DOMAIN) to \
                open an ngrok tunnel. (--simulate needs neither.)
                """
        case .invalidScript(let reason):
            return "simulator script: \(reason)"
        case .unauthenticatedNetworkListener(let reasons):
            return """
                /mcp can be reached from beyond this machine (\(reasons.joined(separator: "; "))), so MCP requests must be \
                authenticated: set AGENT_PAYMENTS_HTTP_TOKENS (or --http-tokens-file) to long random tokens, or \
                AGENT_PAYMENTS_OAUTH_ISSUER to accept OAuth access tokens. (--allow-unauthenticated starts anyway, for test \
                benches only.)
                """
        case .invalidDatabaseURL(let reason):
            return "DATABASE_URL \(reason)"
        case .invalidWebhooks(let reason):
            return "webhooks: \(reason)"
        case .missingDatabaseURL:
            return
                "no database is configured: set DATABASE_URL (or pass --database-url) to postgres://user:password@host:5432/database"
        }
    }
}

/// Everything the server needs, read from the command line and the environment and checked
/// once: the payments system's configuration, the tools' defaults, and every secret (for the
/// log redactor).
struct ServerConfiguration {
    var payments: PaymentsConfiguration
    var defaults: PaymentDefaults
    var secrets: [String]
    /// MCP over Streamable HTTP instead of stdio (`--http`).
    var http: HTTPSettings?
    /// Sessions in PostgreSQL, shared with other replicas (`DATABASE_URL`); in memory without.
    var database: PostgresDatabaseConfiguration?
    /// How long start-up waits for the database to be reachable
    /// (`AGENT_PAYMENTS_DATABASE_START_SECONDS`, default 30).
    var databaseStartTimeout: Duration = .seconds(30)
    /// The callback key every replica shares, when `AGENT_PAYMENTS_CALLBACK_KEY` gives it; with a
    /// database and without it, the key stored in the database.
    var callbackKey: Secret?
    /// The longest a tool call takes, waits included (`AGENT_PAYMENTS_MAX_WAIT_SECONDS`, default
    /// 3: voice frameworks time tool calls out after 5 s).
    var maximumWait: Duration = .milliseconds(Int64(PaymentsMCP.defaultMaximumWaitSeconds * 1000))
    /// The HTTP header a voice platform sends the call's SID in; it supplies `callSid` to tool
    /// calls that omit it.
    static let callSIDHeader = "X-Twilio-Call-Sid"

    /// Where payment events are pushed (`AGENT_PAYMENTS_WEBHOOK_URL`, `AGENT_PAYMENTS_WEBHOOKS_FILE`;
    /// Docs/voice-agents.md), if anywhere.
    var webhooks: WebhookSettings?

    /// What makes an unauthenticated `/mcp` reachable from elsewhere, when
    /// `--allow-unauthenticated` let it start anyway (said loudly at start-up).
    var unauthenticatedExposure: [String] = []

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

    /// Whether this runs against the built-in simulator.
    var simulated: Bool {
        if case .simulated = payments.twilio { return true }
        return false
    }

    static func load(
        positional: [String], simulate: Bool, environment: [String: String], http: String? = nil,
        tokensFile: String? = nil, allowUnauthenticated: Bool = false, databaseURL: String? = nil
    ) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = try loadPayments(positional: positional, simulate: simulate, environment: environment)
        if let text = environment["AGENT_PAYMENTS_FINISHED_RETENTION_SECONDS"]?.trimmingCharacters(in: .whitespaces),
            !text.isEmpty
        {
            guard let seconds = Int(text), seconds >= 0 else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_FINISHED_RETENTION_SECONDS", value: text,
                    expected: "a whole number of seconds (how long a finished session stays readable; default 3600)")
            }
            configuration.payments.finishedRetention = .seconds(seconds)
        }
        if let text = environment["AGENT_PAYMENTS_MAX_WAIT_SECONDS"]?.trimmingCharacters(in: .whitespaces),
            !text.isEmpty
        {
            guard let seconds = Double(text), seconds.isFinite, seconds >= 0.1, seconds <= 60 else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_MAX_WAIT_SECONDS", value: text,
                    expected:
                        "seconds between 0.1 and 60 (the longest a tool call waits; default 3, which fits a 5-second client timeout)"
                )
            }
            configuration.maximumWait = .milliseconds(Int64(seconds * 1000))
        }
        configuration.payments.policy = try loadPolicy(environment)
        do {
            let webhooks = try WebhookEndpoints.load(environment: environment)
            if !webhooks.endpoints.isEmpty {
                configuration.webhooks = webhooks
                configuration.secrets += webhooks.endpoints.map(\.secret.encoded)
            }
        } catch {
            throw .invalidWebhooks(error.description)
        }
        if let database = try loadDatabase(databaseURL, environment: environment) {
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
        let address =
            http
            ?? environment["AGENT_PAYMENTS_HTTP"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        if let address {
            let settings = try HTTPSettings.load(address: address, tokensFile: tokensFile, environment: environment)
            // Closed by default: whatever makes /mcp reachable from elsewhere requires authentication.
            let exposure = Self.exposure(of: settings, publicURL: configuration.payments.publicURL)
            if !settings.authenticated, !exposure.isEmpty {
                guard allowUnauthenticated else { throw .unauthenticatedNetworkListener(reasons: exposure) }
                configuration.unauthenticatedExposure = exposure
            }
            // One listener: the callbacks arrive where MCP is served.
            if case .own(_, _, let limits) = configuration.payments.callbackListener {
                configuration.payments.callbackListener = .own(host: settings.host, port: settings.port, limits: limits)
            }
            configuration.secrets += settings.tokens
            configuration.http = settings
        }
        return configuration
    }

    /// The spending policy: `AGENT_PAYMENTS_MAX_CHARGE` (per payment), `AGENT_PAYMENTS_CURRENCIES`
    /// (comma-separated ISO 4217 codes), `AGENT_PAYMENTS_DAILY_LIMIT` (per principal, currency and
    /// UTC day) and `AGENT_PAYMENTS_REQUIRE_AMOUNT_DUE` (charges only an amount the backend
    /// registered). Unset: no limit.
    static func loadPolicy(_ environment: [String: String]) throws(ConfigurationError) -> SpendingPolicy {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        func amount(_ name: String) throws(ConfigurationError) -> Decimal? {
            guard let text = value(name) else { return nil }
            guard PaymentSessionOptions(chargeAmount: text).validate().isEmpty,
                let amount = SpendingPolicy.decimal(text), amount > 0
            else {
                throw .invalidValue(
                    variable: name, value: text, expected: "a decimal amount greater than 0, such as 500 or 99.90")
            }
            return amount
        }
        var policy = SpendingPolicy(
            maximumCharge: try amount("AGENT_PAYMENTS_MAX_CHARGE"), dailyLimit: try amount("AGENT_PAYMENTS_DAILY_LIMIT")
        )
        if let text = value("AGENT_PAYMENTS_CURRENCIES") {
            let codes = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter {
                !$0.isEmpty
            }
            if codes.isEmpty || codes.contains(where: { !PaymentSessionOptions(currency: $0).validate().isEmpty }) {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_CURRENCIES", value: text,
                    expected: "ISO 4217 codes separated by commas, such as USD,EUR")
            }
            policy.currencies = Set(codes)
        }
        if let text = value("AGENT_PAYMENTS_REQUIRE_AMOUNT_DUE") {
            switch text.lowercased() {
            case "1", "true", "yes": policy.requireAmountDue = true
            case "0", "false", "no": policy.requireAmountDue = false
            default:
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_REQUIRE_AMOUNT_DUE", value: text, expected: "true or false")
            }
        }
        return policy
    }

    /// The database from `--database-url` or `DATABASE_URL`, its start-up wait, and a callback
    /// key given in `AGENT_PAYMENTS_CALLBACK_KEY` (else the one stored in the database is used).
    static func loadDatabase(
        _ url: String?, environment: [String: String]
    ) throws(ConfigurationError)
        -> (configuration: PostgresDatabaseConfiguration, startTimeout: Duration, callbackKey: Secret?)?
    {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        guard let text = url.flatMap({ $0.isEmpty ? nil : $0 }) ?? value("DATABASE_URL") else { return nil }
        let configuration: PostgresDatabaseConfiguration
        do {
            configuration = try PostgresDatabaseConfiguration(url: text)
        } catch {
            throw .invalidDatabaseURL(error.description)
        }
        var timeout: Duration = .seconds(30)
        if let seconds = value("AGENT_PAYMENTS_DATABASE_START_SECONDS") {
            guard let parsed = Int(seconds), parsed >= 0 else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_DATABASE_START_SECONDS", value: seconds,
                    expected: "a whole number of seconds")
            }
            timeout = .seconds(parsed)
        }
        var key: Secret?
        if let text = environment["AGENT_PAYMENTS_CALLBACK_KEY"], !text.isEmpty {
            guard text.utf8.count >= 32 else {
                throw .invalidValue(
                    variable: "AGENT_PAYMENTS_CALLBACK_KEY", value: "…",
                    expected: "at least 32 characters (the same in every replica)")
            }
            key = Secret(text)
        }
        return (configuration, timeout, key)
    }

    private static func loadPayments(
        positional: [String], simulate: Bool, environment: [String: String]
    ) throws(ConfigurationError) -> ServerConfiguration {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        var defaults = PaymentDefaults()
        if let tokenType = value("TOKEN_TYPE") {
            guard let parsed = TokenType(rawValue: tokenType) else {
                throw .invalidValue(
                    variable: "TOKEN_TYPE", value: tokenType,
                    expected: TokenType.allCases.map(\.rawValue).joined(separator: ", ").replacingLast(
                        ", ", with: " or "))
            }
            defaults.tokenType = parsed
        }
        if let currency = value("CURRENCY") {
            guard currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw .invalidValue(
                    variable: "CURRENCY", value: currency, expected: "a three-letter ISO 4217 code such as USD")
            }
            defaults.currency = currency.uppercased()
        }
        defaults.paymentConnector = value("PAYMENT_CONNECTOR")
        func flag(_ name: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
            guard let text = value(name) else { return fallback }
            switch text.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw .invalidValue(variable: name, value: text, expected: "true or false")
            }
        }
        defaults.postalCode = try flag("POSTAL_CODE", default: false)
        defaults.securityCode = try flag("SECURITY_CODE", default: true)

        let limits: ListenerLimits
        do {
            limits = try ListenerLimits.fromEnvironment(environment)
        } catch {
            throw .invalidValue(variable: error.variable, value: error.value, expected: "a positive integer")
        }
        let host = value("CALLBACK_HOST") ?? "127.0.0.1"
        var port = 0
        if let text = value("CALLBACK_PORT") {
            guard let parsed = Int(text), (0...65535).contains(parsed) else {
                throw .invalidValue(
                    variable: "CALLBACK_PORT", value: text,
                    expected: "a port number between 0 and 65535 (0 picks a free one)")
            }
            port = parsed
        }
        let listener = PaymentsConfiguration.CallbackListener.own(host: host, port: port, limits: limits)

        if simulate {
            if !positional.isEmpty { throw .simulateTakesNoCredentials }
            let pacing = value("AGENT_PAYMENTS_SIMULATOR_PACING_MS").flatMap(Int.init) ?? 150
            var payments = PaymentsConfiguration.simulated(
                digitPacing: .milliseconds(max(0, pacing)),
                scripts: try value("AGENT_PAYMENTS_SIMULATOR_SCRIPT").map(SimulatorScripts.load(path:)) ?? [:])
            payments.callbackListener = listener
            return ServerConfiguration(payments: payments, defaults: defaults, secrets: [])
        }

        let accountSID: String, apiKey: String, apiSecret: String
        switch positional.count {
        case 3:
            (accountSID, apiKey, apiSecret) = (positional[0], positional[1], positional[2])
        case 0:
            guard let account = value("TWILIO_ACCOUNT_SID"), let key = value("TWILIO_API_KEY"),
                let secret = environment["TWILIO_API_SECRET"], !secret.isEmpty
            else {
                throw .missingCredentials
            }
            (accountSID, apiKey, apiSecret) = (account, key, secret)
        default:
            throw .wrongArgumentCount(positional.count)
        }
        let credentials: TwilioCredentials
        do {
            credentials = try TwilioCredentials(
                accountSID: accountSID, apiKeySID: apiKey, apiSecret: apiSecret,
                authToken: value("TWILIO_AUTH_TOKEN"))
        } catch {
            throw .invalidCredentials(error.description)
        }

        var apiBaseURL = TwilioPaymentsClient.defaultBaseURL
        if let text = value("TWILIO_API_BASE_URL") {
            guard let url = URL(string: text), let scheme = url.scheme,
                ["http", "https"].contains(scheme.lowercased()), url.host != nil
            else {
                throw .invalidValue(
                    variable: "TWILIO_API_BASE_URL", value: text,
                    expected: "an absolute URL such as https://api.dublin.ie1.twilio.com")
            }
            apiBaseURL = url
        }

        let publicURL: PaymentsConfiguration.PublicURL
        if let base = value("CALLBACK_BASE_URL") {
            guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), url.host != nil,
                scheme == "https" || scheme == "http"
            else {
                throw .invalidValue(
                    variable: "CALLBACK_BASE_URL", value: base,
                    expected: "the absolute https URL at which Twilio reaches this machine")
            }
            publicURL = .explicit(base)
        } else if let token = value("NGROK_AUTH_TOKEN") {
            // The agent's environment is drawn from this process's (only the basics reach it).
            publicURL = .ngrok(authToken: Secret(token), domain: value("NGROK_CUSTOM_DOMAIN"), environment: environment)
        } else {
            throw .missingPublicURL
        }
        var secrets = [apiSecret]
        if let token = value("TWILIO_AUTH_TOKEN") { secrets.append(token) }
        if case .ngrok(let token, _, _, _) = publicURL { secrets.append(token.revealed) }
        let payments = PaymentsConfiguration(
            twilio: .live(credentials, baseURL: apiBaseURL), callbackListener: listener, publicURL: publicURL)
        return ServerConfiguration(payments: payments, defaults: defaults, secrets: secrets)
    }
}

extension String {
    /// The string with its last `separator` replaced ("a, b, c" → "a, b or c").
    fileprivate func replacingLast(_ separator: String, with replacement: String) -> String {
        guard let range = range(of: separator, options: .backwards) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}

/// Per-call caller scripts for --simulate, from the JSON file named by
/// `AGENT_PAYMENTS_SIMULATOR_SCRIPT`: `{"CA…": {"payment-card-number": ["4111111111111112", "4111111111111111"],
/// "security-code": ["silence"], "completion": "decline"}}`. Entries are digits, `silence`,
/// `hang-up`, `hang-up-silently` (the call ends with no callback) or `star`; `completion` is
/// `succeed` or `decline`.
enum SimulatorScripts {
    static func load(path: String) throws(ConfigurationError) -> [CallSID: CallerScript] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .invalidScript(
                "AGENT_PAYMENTS_SIMULATOR_SCRIPT names \(path), which cannot be read: \(error.localizedDescription)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: Any]] else {
            throw .invalidScript("AGENT_PAYMENTS_SIMULATOR_SCRIPT must name a JSON object keyed by call SID")
        }
        var scripts: [CallSID: CallerScript] = [:]
        for (callText, entries) in object {
            guard let call = CallSID(callText) else { throw .invalidScript("\"\(callText)\" is not a call SID") }
            var script = CallerScript()
            for (key, value) in entries {
                if key == "completion" {
                    script.completion = (value as? String) == "decline" ? .decline() : .succeed
                    continue
                }
                guard let item = PaymentItem(rawValue: key), let attempts = value as? [String] else {
                    throw .invalidScript("unknown item \"\(key)\" for \(callText)")
                }
                script.entries[item] = attempts.map { attempt in
                    switch attempt {
                    case "silence": return .silence
                    case "hang-up": return .hangUp
                    case "hang-up-silently": return .hangUpSilently
                    case "star": return .pressStar
                    default: return .digits(attempt)
                    }
                }
            }
            scripts[call] = script
        }
        return scripts
    }
}
