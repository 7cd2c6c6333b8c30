import ArgumentParser
import Foundation
import ListenerGuard
import PaymentsMCP
import TwilioPayments
import TwilioSimulator

/// Everything the server needs, read from the command line and the environment and checked
/// once, with messages a user can act on.
struct ServerConfiguration {
    enum Mode {
        /// Real Twilio with these credentials.
        case live(TwilioCredentials, apiBaseURL: URL, publicURL: PublicURLSource)
        /// The built-in TwilioSimulator on loopback; no account needed.
        case simulate
    }

    enum PublicURLSource {
        case explicit(String)
        case ngrok(token: Secret, domain: String?)
    }

    var mode: Mode
    var defaults: PaymentDefaults
    var callbackHost: String
    var callbackPort: Int
    /// The bounds the callback listener keeps against slow and idle clients.
    var limits: ListenerLimits
    /// Every secret, for the log redactor.
    var secrets: [String]

    static func load(positional: [String], simulate: Bool, environment: [String: String]) throws -> ServerConfiguration {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        var defaults = PaymentDefaults()
        if let tokenType = value("TOKEN_TYPE") {
            guard let parsed = TokenType(rawValue: tokenType) else {
                throw ValidationError("TOKEN_TYPE must be one-time, reusable or payment-method, got \"\(tokenType)\"")
            }
            defaults.tokenType = parsed
        }
        if let currency = value("CURRENCY") {
            guard currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                throw ValidationError("CURRENCY must be a three-letter ISO 4217 code such as USD, got \"\(currency)\"")
            }
            defaults.currency = currency.uppercased()
        }
        defaults.paymentConnector = value("PAYMENT_CONNECTOR")
        func flag(_ name: String, default fallback: Bool) throws -> Bool {
            guard let text = value(name) else { return fallback }
            switch text.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw ValidationError("\(name) must be true or false, got \"\(text)\"")
            }
        }
        defaults.postalCode = try flag("POSTAL_CODE", default: false)
        defaults.securityCode = try flag("SECURITY_CODE", default: true)

        let limits: ListenerLimits
        do {
            limits = try ListenerLimits.fromEnvironment(environment)
        } catch {
            throw ValidationError(error.description)
        }
        let host = value("CALLBACK_HOST") ?? "127.0.0.1"
        var port = 0
        if let text = value("CALLBACK_PORT") {
            guard let parsed = Int(text), (0...65535).contains(parsed) else {
                throw ValidationError("CALLBACK_PORT must be a port number between 0 and 65535 (0 picks a free one), got \"\(text)\"")
            }
            port = parsed
        }

        if simulate {
            if !positional.isEmpty {
                throw ValidationError("--simulate runs against the built-in simulator and takes no credentials; remove them, or drop --simulate")
            }
            return ServerConfiguration(mode: .simulate, defaults: defaults, callbackHost: host, callbackPort: port, limits: limits, secrets: [])
        }

        let accountSID: String, apiKey: String, apiSecret: String
        switch positional.count {
        case 3:
            (accountSID, apiKey, apiSecret) = (positional[0], positional[1], positional[2])
        case 0:
            guard let account = value("TWILIO_ACCOUNT_SID"), let key = value("TWILIO_API_KEY"), let secret = environment["TWILIO_API_SECRET"], !secret.isEmpty else {
                throw ValidationError("""
                    Twilio credentials are missing. Pass them as arguments (agent-payments <accountSid> <apiKey> <apiSecret>) or \
                    set TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET (which keeps the secret out of ps). To try the \
                    server without an account, run agent-payments --simulate, or agent-payments demo.
                    """)
            }
            (accountSID, apiKey, apiSecret) = (account, key, secret)
        default:
            throw ValidationError("expected three arguments, <accountSid> <apiKey> <apiSecret>, got \(positional.count)")
        }
        let credentials: TwilioCredentials
        do {
            credentials = try TwilioCredentials(accountSID: accountSID, apiKeySID: apiKey, apiSecret: apiSecret,
                                                authToken: value("TWILIO_AUTH_TOKEN"))
        } catch {
            throw ValidationError(error.description)
        }

        var apiBaseURL = TwilioPaymentsClient.defaultBaseURL
        if let text = value("TWILIO_API_BASE_URL") {
            guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()), url.host != nil else {
                throw ValidationError("TWILIO_API_BASE_URL must be an absolute URL such as https://api.dublin.ie1.twilio.com, got \"\(text)\"")
            }
            apiBaseURL = url
        }

        let publicURL: PublicURLSource
        if let base = value("CALLBACK_BASE_URL") {
            guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), url.host != nil, scheme == "https" || scheme == "http" else {
                throw ValidationError("CALLBACK_BASE_URL must be the absolute https URL at which Twilio reaches this machine, got \"\(base)\"")
            }
            publicURL = .explicit(base)
        } else if let token = value("NGROK_AUTH_TOKEN") {
            publicURL = .ngrok(token: Secret(token), domain: value("NGROK_CUSTOM_DOMAIN"))
        } else {
            throw ValidationError("""
                Twilio needs a public URL for its status callbacks. Either set CALLBACK_BASE_URL to the https URL that reaches \
                this machine's callback port (CALLBACK_PORT), or set NGROK_AUTH_TOKEN (and optionally NGROK_CUSTOM_DOMAIN) to \
                open an ngrok tunnel. (--simulate needs neither.)
                """)
        }
        var secrets = [apiSecret]
        if let token = value("TWILIO_AUTH_TOKEN") { secrets.append(token) }
        if case .ngrok(let token, _) = publicURL { secrets.append(token.revealed) }
        return ServerConfiguration(mode: .live(credentials, apiBaseURL: apiBaseURL, publicURL: publicURL), defaults: defaults,
                                   callbackHost: host, callbackPort: port, limits: limits, secrets: secrets)
    }
}

/// Per-call caller scripts for --simulate, from the JSON file named by
/// `AGENT_PAYMENTS_SIMULATOR_SCRIPT`: `{"CA…": {"payment-card-number": ["4111111111111112", "4111111111111111"],
/// "security-code": ["silence"], "completion": "decline"}}`. Entries are digits, `silence`,
/// `hang-up`, `hang-up-silently` (the call ends with no callback) or `star`; `completion` is
/// `succeed` or `decline`.
enum SimulatorScripts {
    static func load(path: String) throws -> [CallSID: CallerScript] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else {
            throw ValidationError("AGENT_PAYMENTS_SIMULATOR_SCRIPT must name a JSON object keyed by call SID")
        }
        var scripts: [CallSID: CallerScript] = [:]
        for (callText, entries) in object {
            guard let call = CallSID(callText) else { throw ValidationError("simulator script: \"\(callText)\" is not a call SID") }
            var script = CallerScript()
            for (key, value) in entries {
                if key == "completion" {
                    script.completion = (value as? String) == "decline" ? .decline() : .succeed
                    continue
                }
                guard let item = CaptureItem(rawValue: key), let attempts = value as? [String] else {
                    throw ValidationError("simulator script: unknown item \"\(key)\" for \(callText)")
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
