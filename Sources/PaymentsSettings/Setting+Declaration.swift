// Every setting agent-payments reads, in the order `config check` and Docs/configuration.md list
// them. A new setting is declared here, read through ``Settings``, and given a row in the docs
// (SettingsTests holds the docs to this list).
extension Setting {
    // MARK: Twilio
    public static let accountSID = Setting(
        "TWILIO_ACCOUNT_SID", option: "<accountSid>", group: .twilio,
        "the account SID, `AC` and 32 hex digits (or the first argument)")
    public static let apiKey = Setting(
        "TWILIO_API_KEY", option: "<apiKey>", group: .twilio,
        "the API key SID, `SK` and 32 hex digits (or the second argument)")
    public static let apiSecret = Setting(
        "TWILIO_API_SECRET", option: "<apiSecret>", secret: true, group: .twilio,
        "the API key's secret (or the third argument, which `ps` shows)")
    public static let authToken = Setting(
        "TWILIO_AUTH_TOKEN", secret: true, group: .twilio,
        "the account's primary Auth Token: enables `X-Twilio-Signature` validation of callbacks (strongly recommended)")
    public static let apiBaseURL = Setting(
        "TWILIO_API_BASE_URL", default: "https://api.twilio.com", group: .twilio,
        "Twilio's API as a URL, for a stand-in such as twilio-simulator (for Twilio's regions, `TWILIO_REGION`)")
    public static let pauseRecordings = Setting(
        "AGENT_PAYMENTS_PAUSE_RECORDINGS", default: "off", group: .twilio,
        "`off`, `on` (each running recording of the call is paused while the card is entered, and resumed after) or `required` (a start whose recordings cannot be paused is refused)"
    )
    public static let region = Setting(
        "TWILIO_REGION", defaultText: "US1 (`api.twilio.com`)", group: .twilio,
        "`us1`, `ie1` or `au1`: the Twilio Region the account's calls are in (its keys and Auth Token are that region's)"
    )
    public static let edge = Setting(
        "TWILIO_EDGE", defaultText: "the region's (`ashburn`, `dublin`, `sydney`)", group: .twilio,
        "the edge location requests enter Twilio through (`dublin`, `frankfurt`, `sydney`, …), with `TWILIO_REGION`")

    // MARK: Payment defaults
    public static let tokenType = Setting(
        "TOKEN_TYPE", defaultText: "Twilio's (`reusable`)", group: .payments,
        "`one-time`, `reusable` or `payment-method` (Stripe only), for `startPaymentCapture`")
    public static let currency = Setting(
        "CURRENCY", defaultText: "Twilio's (`USD`)", group: .payments, "the ISO 4217 code payments are in by default")
    public static let paymentConnector = Setting(
        "PAYMENT_CONNECTOR", defaultText: "Twilio's (`Default`)", group: .payments,
        "the Pay Connector's unique name")
    public static let postalCode = Setting(
        "POSTAL_CODE", default: "false", group: .payments,
        "`true` asks the caller for the billing postal code (cards; the tool's `postalCode` wins)")
    public static let securityCode = Setting(
        "SECURITY_CODE", default: "true", group: .payments,
        "`false` sends `SecurityCode=false` (cards; the tool's `securityCode` wins)")

    // MARK: Callbacks
    public static let callbackBaseURL = Setting(
        "CALLBACK_BASE_URL", group: .callbacks,
        "the public URL a proxy or tunnel forwards to the callback port; callbacks are `<base>/twilio/payment-callbacks/<secret>`"
    )
    public static let ngrokAuthToken = Setting(
        "NGROK_AUTH_TOKEN", secret: true, group: .callbacks,
        "start an `ngrok` agent for the callback port instead (needs `ngrok` on `PATH`)")
    public static let ngrokDomain = Setting(
        "NGROK_CUSTOM_DOMAIN", group: .callbacks, "a reserved ngrok domain for that tunnel")
    public static let callbackHost = Setting(
        "CALLBACK_HOST", default: "127.0.0.1", group: .callbacks,
        "the callback server's bind address (not with `--http`)")
    public static let callbackPort = Setting(
        "CALLBACK_PORT", default: "0", defaultText: "`0` (a free port)", group: .callbacks,
        "the callback server's port; fix it when a proxy forwards to it (not with `--http`)")

    // MARK: Listener bounds
    public static let headTimeout = Setting(
        "AGENT_PAYMENTS_HEAD_TIMEOUT_MS", default: "5000", group: .listener,
        "a request head must be complete within this many milliseconds of its first byte")
    public static let minimumBodyRate = Setting(
        "AGENT_PAYMENTS_MIN_BODY_RATE", default: "1024", group: .listener,
        "bytes per second a request body must keep arriving at")
    public static let requestTimeout = Setting(
        "AGENT_PAYMENTS_REQUEST_TIMEOUT_MS", default: "30000", group: .listener,
        "a whole request must be in within this many milliseconds")
    public static let idleTimeout = Setting(
        "AGENT_PAYMENTS_IDLE_TIMEOUT_MS", default: "15000", group: .listener,
        "idle milliseconds allowed between keep-alive requests")
    public static let writeTimeout = Setting(
        "AGENT_PAYMENTS_WRITE_TIMEOUT_MS", default: "30000", group: .listener,
        "how long response bytes may wait with none taken by the client before the connection is closed")
    public static let maximumPipelinedRequests = Setting(
        "AGENT_PAYMENTS_MAX_PIPELINED_REQUESTS", default: "16", group: .listener,
        "requests one connection may have sent and not yet had answered; one more closes it")
    public static let maximumConnections = Setting(
        "AGENT_PAYMENTS_MAX_CONNECTIONS", defaultText: "open-file limit − 128 (≤ 10,000)", group: .listener,
        "open connections at once; the excess gets `503` and is closed")

    // MARK: MCP over HTTP
    public static let http = Setting(
        "AGENT_PAYMENTS_HTTP", option: "--http", defaultText: "stdio", group: .http,
        "serve MCP over Streamable HTTP at `/mcp` on `[HOST:]PORT` (host default `127.0.0.1`), callbacks on the same listener"
    )
    public static let httpTokens = Setting(
        "AGENT_PAYMENTS_HTTP_TOKENS", secret: true, group: .http,
        "static bearer tokens, comma separated: `TOKEN`, `NAME:TOKEN` or `NAME[@TENANT]:TOKEN:SCOPE SCOPE` (Docs/http.md)"
    )
    public static let httpTokensFile = Setting(
        "AGENT_PAYMENTS_HTTP_TOKENS_FILE", option: "--http-tokens-file", group: .http,
        "a file of the same entries, one per line")
    public static let oauthIssuer = Setting(
        "AGENT_PAYMENTS_OAUTH_ISSUER", group: .http, "accept OAuth 2.1 access tokens (JWT) from this issuer")
    public static let oauthJWKSURL = Setting(
        "AGENT_PAYMENTS_OAUTH_JWKS_URL", defaultText: "discovered", group: .http,
        "the issuer's JWKS, else found through its metadata")
    public static let oauthAudience = Setting(
        "AGENT_PAYMENTS_OAUTH_AUDIENCE", defaultText: "the canonical `/mcp` URL", group: .http,
        "the `aud` a token must carry (RFC 8707)")
    public static let oauthScope = Setting(
        "AGENT_PAYMENTS_OAUTH_SCOPE", defaultText: "none", group: .http,
        "scopes every token must carry to be admitted at all (space separated)")
    public static let oauthTenantClaim = Setting(
        "AGENT_PAYMENTS_OAUTH_TENANT_CLAIM", defaultText: "none", group: .http,
        "the claim that names a principal's tenant (`tid`, `org_id`)")
    public static let oauthAlgorithms = Setting(
        "AGENT_PAYMENTS_OAUTH_ALGORITHMS", defaultText: "RS, PS, ES and EdDSA", group: .http,
        "accepted signature algorithms, in order of preference")
    public static let oauthKeyLifetime = Setting(
        "AGENT_PAYMENTS_OAUTH_KEY_LIFETIME_SECONDS", default: "600", group: .http,
        "how long fetched keys are trusted before they are fetched again")
    public static let allowedOrigins = Setting(
        "AGENT_PAYMENTS_ALLOWED_ORIGINS", defaultText: "none", group: .http,
        "browser origins allowed to call `/mcp`, comma separated")
    public static let httpMaximumStreams = Setting(
        "AGENT_PAYMENTS_HTTP_MAX_STREAMS", default: "16", group: .http, "open SSE streams per principal; past it `429`")
    public static let httpMaximumSessions = Setting(
        "AGENT_PAYMENTS_HTTP_MAX_SESSIONS", default: "1000", group: .http, "legacy sessions at once; past it `503`")
    public static let httpMaximumSessionsPerClient = Setting(
        "AGENT_PAYMENTS_HTTP_MAX_SESSIONS_PER_CLIENT", default: "100", group: .http,
        "legacy sessions one principal may hold; past it `429`")
    public static let rateToolCalls = Setting(
        "AGENT_PAYMENTS_RATE_TOOL_CALLS", default: "600", group: .http,
        "`tools/call` requests per minute per principal (`0` turns it off)")
    public static let rateToolCallsPerAddress = Setting(
        "AGENT_PAYMENTS_RATE_TOOL_CALLS_PER_ADDRESS", default: "3000", group: .http,
        "the same per source address")
    public static let rateAuthenticationFailures = Setting(
        "AGENT_PAYMENTS_RATE_AUTH_FAILURES", default: "60", group: .http,
        "refused authentications per minute per source address")
    public static let httpSessionIdle = Setting(
        "AGENT_PAYMENTS_HTTP_SESSION_IDLE_SECONDS", default: "1800", group: .http,
        "a legacy session unused this long, with no open stream, expires")
    public static let httpKeepAlive = Setting(
        "AGENT_PAYMENTS_HTTP_KEEPALIVE_SECONDS", default: "15", group: .http, "SSE keep-alive comment interval")

    // MARK: Spending policy
    public static let maximumCharge = Setting(
        "AGENT_PAYMENTS_MAX_CHARGE", defaultText: "none", group: .policy,
        "the largest `chargeAmount` of one payment; a larger one is refused before Twilio is asked")
    public static let currencies = Setting(
        "AGENT_PAYMENTS_CURRENCIES", defaultText: "any", group: .policy,
        "the currencies that may be charged, comma separated (`USD,EUR`)")
    public static let dailyLimit = Setting(
        "AGENT_PAYMENTS_DAILY_LIMIT", defaultText: "none", group: .policy,
        "the most one principal may charge per currency per UTC day")
    public static let requireAmountDue = Setting(
        "AGENT_PAYMENTS_REQUIRE_AMOUNT_DUE", default: "false", group: .policy,
        "charge only an amount the backend registered for the call")

    // MARK: Database
    public static let databaseURL = Setting(
        "DATABASE_URL", option: "--database-url", secret: true, group: .database,
        "`postgres://user:password@host:5432/database`: sessions in PostgreSQL, shared by replicas")
    public static let callbackKey = Setting(
        "AGENT_PAYMENTS_CALLBACK_KEY", defaultText: "stored in the database", secret: true, group: .database,
        "the key callback URLs are derived from (≥ 32 characters, the same in every replica)")
    public static let databaseStart = Setting(
        "AGENT_PAYMENTS_DATABASE_START_SECONDS", default: "30", group: .database,
        "how long start-up waits for the database before it exits with status 75")

    // MARK: Webhooks
    public static let webhookURL = Setting(
        "AGENT_PAYMENTS_WEBHOOK_URL", group: .webhooks,
        "one endpoint for signed payment events, named `default`; needs the secret")
    public static let webhookSecret = Setting(
        "AGENT_PAYMENTS_WEBHOOK_SECRET", secret: true, group: .webhooks,
        "its Standard Webhooks signing secret, `whsec_` and base64")
    public static let webhookEvents = Setting(
        "AGENT_PAYMENTS_WEBHOOK_EVENTS", defaultText: "every event", group: .webhooks,
        "the event types it receives, comma separated (`payment.item.*`)")
    public static let webhooksFile = Setting(
        "AGENT_PAYMENTS_WEBHOOKS_FILE", group: .webhooks, "a JSON file of several endpoints, each with its filter")
    public static let webhookAllowPrivate = Setting(
        "AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE", default: "false", group: .webhooks,
        "`true` lets endpoints be on private and other non-public addresses")
    public static let webhookMaximumAge = Setting(
        "AGENT_PAYMENTS_WEBHOOK_MAX_AGE_SECONDS", default: "86400", group: .webhooks,
        "how long an event's delivery is retried before it is given up (60–604800)")
    public static let webhookFirstRetry = Setting(
        "AGENT_PAYMENTS_WEBHOOK_RETRY_FIRST_MS", default: "2000", group: .webhooks,
        "the first wait before a failed delivery is tried again, doubled each time (10–60000)")
    public static let webhookLease = Setting(
        "AGENT_PAYMENTS_WEBHOOK_LEASE_SECONDS", default: "60", group: .webhooks,
        "with PostgreSQL: how long a replica holds an event it is delivering (20–3600)")

    // MARK: Server
    public static let configFile = Setting(
        "AGENT_PAYMENTS_CONFIG", option: "--config", group: .server,
        "a JSON or YAML file of settings by these names; the environment and the command line win over it")
    public static let logLevel = Setting(
        "AGENT_PAYMENTS_LOG_LEVEL", default: "info", group: .server,
        "`trace`, `debug`, `info`, `notice`, `warning` or `error`: logs on stderr and in MCP log notifications")
    public static let logFormat = Setting(
        "AGENT_PAYMENTS_LOG_FORMAT", default: "text", group: .server,
        "`text` (a readable line per event) or `json` (one JSON object per line, for log shippers): the logs on stderr")
    public static let metrics = Setting(
        "AGENT_PAYMENTS_METRICS", defaultText: "on the listener", group: .server,
        "`/metrics` (Prometheus): on the one listener, on a listener of its own at `[HOST:]PORT` (host default `127.0.0.1`; off loopback it asks what `/mcp` asks), or `off` (nothing counted)"
    )
    public static let audit = Setting(
        "AGENT_PAYMENTS_AUDIT", defaultText: "`database` with `DATABASE_URL`, else `stderr`", group: .server,
        "the audit trail (Docs/operations.md): `database` (a table), `stderr` or a file's path (JSON lines), or `off`")
    public static let replica = Setting(
        "AGENT_PAYMENTS_REPLICA", defaultText: "host name and process id", group: .server,
        "this process's name in audit records")
    public static let maximumWait = Setting(
        "AGENT_PAYMENTS_MAX_WAIT_SECONDS", default: "3", group: .server,
        "the longest any tool call takes, waits included (0.1–60; voice frameworks time calls out after 5 s)")
    public static let finishedRetention = Setting(
        "AGENT_PAYMENTS_FINISHED_RETENTION_SECONDS", default: "3600", group: .server,
        "how long a finished session stays readable before it is deleted")
    public static let strandedStart = Setting(
        "AGENT_PAYMENTS_STRANDED_START_SECONDS", default: "30", group: .server,
        "how long a start may wait for Twilio's answer before any replica sends its creation again (1–3600)")

    // MARK: Simulator
    public static let simulatorPacing = Setting(
        "AGENT_PAYMENTS_SIMULATOR_PACING_MS", default: "150", group: .simulator,
        "with `--simulate`: milliseconds between simulated keypresses (0 for tests)")
    public static let simulatorScript = Setting(
        "AGENT_PAYMENTS_SIMULATOR_SCRIPT", group: .simulator,
        "with `--simulate`: a JSON file that scripts the caller per call SID")

    /// Every setting, in the documentation's order.
    public static let all: [Setting] = [
        accountSID, apiKey, apiSecret, authToken, apiBaseURL, region, edge, pauseRecordings,
        tokenType, currency, paymentConnector, postalCode, securityCode,
        callbackBaseURL, ngrokAuthToken, ngrokDomain, callbackHost, callbackPort,
        headTimeout, minimumBodyRate, requestTimeout, idleTimeout, writeTimeout, maximumPipelinedRequests,
        maximumConnections,
        http, httpTokens, httpTokensFile, oauthIssuer, oauthJWKSURL, oauthAudience, oauthScope, oauthTenantClaim,
        oauthAlgorithms, oauthKeyLifetime, allowedOrigins, httpMaximumStreams, httpMaximumSessions,
        httpMaximumSessionsPerClient, rateToolCalls, rateToolCallsPerAddress, rateAuthenticationFailures,
        httpSessionIdle, httpKeepAlive,
        maximumCharge, currencies, dailyLimit, requireAmountDue,
        databaseURL, callbackKey, databaseStart,
        webhookURL, webhookSecret, webhookEvents, webhooksFile, webhookAllowPrivate, webhookMaximumAge,
        webhookFirstRetry, webhookLease,
        configFile, logLevel, logFormat, metrics, audit, replica, maximumWait, finishedRetention,
        strandedStart, simulatorPacing, simulatorScript,
    ]

    /// The setting named `name`, if one is declared.
    public static func named(_ name: String) -> Setting? { all.first { $0.name == name } }
}
