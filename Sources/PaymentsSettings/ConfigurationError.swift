import Foundation

/// Why the command line and environment do not make a configuration: one case per mistake,
/// each with a sentence that says what to do.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
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
    /// The configuration file cannot be used; `reason` says why.
    case invalidConfigFile(path: String, reason: String)

    public var description: String {
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
        case .invalidConfigFile(let path, let reason):
            return "configuration file \(path): \(reason)"
        case .missingDatabaseURL:
            return
                "no database is configured: set DATABASE_URL (or pass --database-url) to postgres://user:password@host:5432/database"
        }
    }
}
