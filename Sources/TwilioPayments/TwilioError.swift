/// An error answer from Twilio's REST API, decoded from either body shape Twilio uses, with a
/// plain explanation and a remedy when the code is one the Payments API documents.
public struct TwilioAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status of the answer.
    public var httpStatus: Int
    /// Twilio's error code (such as 64018), when the body carried one.
    public var code: Int?
    /// Twilio's own message, or the problem title.
    public var message: String
    /// Twilio's documentation link for the code.
    public var moreInfo: String?
    /// The API host that answered (`api.dublin.ie1.twilio.com`), when known: a refused
    /// credential is most often one made in another region.
    public var host: String?

    public init(httpStatus: Int, code: Int?, message: String, moreInfo: String? = nil, host: String? = nil) {
        self.httpStatus = httpStatus
        self.code = code
        self.message = message
        self.moreInfo = moreInfo
        self.host = host
    }

    /// How many attempts Twilio refused before the client gave up, when it retried.
    public var attempts: Int?

    /// Whether Twilio refused the credentials (HTTP 401, or error 20003).
    public var isAuthenticationFailure: Bool { httpStatus == 401 || code == 20003 }

    /// Whether Twilio is throttling (HTTP 429, or error 20429): nothing was done, and the same
    /// request may be sent again later.
    public var isThrottling: Bool { httpStatus == 429 || code == 20429 }

    /// What the code means, in plain words.
    public var explanation: String? { code.flatMap { TwilioErrorCatalog.entries[$0]?.meaning } }
    /// What to do about it.
    public var remedy: String? { code.flatMap { TwilioErrorCatalog.entries[$0]?.remedy } }

    public var description: String {
        var text = "Twilio error \(code.map(String.init) ?? "(no code)") (HTTP \(httpStatus)): \(message)"
        if isThrottling {
            text =
                "Twilio is throttling this account's requests (error \(code.map(String.init) ?? "20429"), HTTP "
                + "\(httpStatus))\(attempts.map { ", \($0) attempts refused, with the same idempotency key" } ?? "")"
        }
        if let explanation { text += ". Meaning: \(explanation)" }
        if let remedy { text += ". What to do: \(remedy)" }
        if isAuthenticationFailure, let host {
            text +=
                ". The request went to \(host): API keys and Auth Tokens belong to one Twilio region (a key made in "
                + "US1 is refused by IE1 and AU1), so a key made in another region than this host's is the likely cause"
        }
        if code == 20404, let host {
            text +=
                ". The request went to \(host): a call handled in another Twilio region is found only through that "
                + "region's API"
        }
        if let moreInfo { text += " (\(moreInfo))" }
        return text
    }
}

/// Why a Twilio operation failed.
public enum TwilioError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Twilio answered with an error.
    case api(TwilioAPIError)
    /// Twilio could not be reached (connection refused, DNS, TLS, timeout), after `attempts`
    /// tries.
    case transport(String, attempts: Int)
    /// Twilio answered with something that is not a valid response.
    case invalidResponse(status: Int, detail: String)
    /// The request was refused locally before anything was sent.
    case invalidRequest([String])

    public var description: String {
        switch self {
        case .api(let error): return error.description
        case .transport(let detail, let attempts):
            return "Could not reach Twilio after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(detail)"
        case .invalidResponse(let status, let detail):
            return "Unexpected answer from Twilio (HTTP \(status)): \(detail)"
        case .invalidRequest(let problems): return "Invalid payment request: " + problems.joined(separator: "; ")
        }
    }

    /// The Twilio error code, when there is one.
    public var code: Int? {
        if case .api(let error) = self { return error.code }
        return nil
    }
}

/// The error codes the Payments API documents, with their meaning and remedy.
public enum TwilioErrorCatalog {
    public struct Entry: Sendable {
        public var meaning: String
        public var remedy: String
    }

    /// Codes that mean the call itself is gone, so no payment can continue on it.
    public static let callGoneCodes: Set<Int> = [21220]

    public static let entries: [Int: Entry] = [
        20003: Entry(
            meaning: "authentication failed",
            remedy:
                "check the Account SID, API key SID and API secret; the key must belong to the account and not be revoked"
        ),
        20404: Entry(
            meaning: "the resource was not found",
            remedy: "check the call SID and payment SID; the call may have ended or belong to another account"),
        20429: Entry(
            meaning: "too many requests: Twilio is throttling the account",
            remedy: "nothing was done: wait a few seconds, then make the same call again"),
        21220: Entry(
            meaning: "the call is not in progress (it has ended)",
            remedy:
                "the payment cannot continue on this call; if the caller calls back, start a new session on the new call"
        ),
        64001: Entry(
            meaning: "the Pay Connector is misconfigured",
            remedy: "check the connector's settings in the Twilio Console"),
        64002: Entry(meaning: "the payment service is temporarily unavailable", remedy: "retry shortly"),
        64003: Entry(meaning: "the charge amount is invalid", remedy: "use a positive decimal amount below 1,000,000"),
        64004: Entry(
            meaning: "the PaymentConnector name is invalid",
            remedy: "use the unique name of a Pay Connector installed on the account"),
        64005: Entry(
            meaning: "this connector cannot tokenize",
            remedy: "send a chargeAmount, or use a connector that supports tokenization"),
        64006: Entry(
            meaning: "the token type is not supported by this connector",
            remedy: "choose another tokenType (payment-method is Stripe only)"),
        64007: Entry(
            meaning: "this connector cannot charge",
            remedy: "tokenize instead (no chargeAmount), or use a connector that supports charges"),
        64008: Entry(
            meaning: "the payment gateway rejected the charge",
            remedy: "tell the caller the payment was declined and offer another card"),
        64009: Entry(
            meaning: "Twilio is no longer authorized at the payment gateway",
            remedy: "re-authorize the connector in the Twilio Console"),
        64010: Entry(
            meaning: "the payment gateway rejected the token", remedy: "capture the card again in a new session"),
        64011: Entry(
            meaning: "the currency is not supported", remedy: "use a currency the connector and gateway accept"),
        64012: Entry(
            meaning: "the payment gateway rejected the card",
            remedy: "tell the caller the card was declined and offer to try another card"),
        64013: Entry(
            meaning: "the payment method is not supported",
            remedy: "use credit-card or ach-debit as the connector allows"),
        64014: Entry(
            meaning: "ACH needs the AVSName parameter",
            remedy: "pass the account holder's name in the connector parameters"),
        64015: Entry(meaning: "a connector parameter is missing", remedy: "pass the parameters the connector requires"),
        64016: Entry(meaning: "the action or callback URL is invalid", remedy: "use an absolute https URL"),
        64017: Entry(
            meaning: "BankAccountType was sent with a card payment", remedy: "send BankAccountType only with ach-debit"),
        64018: Entry(
            meaning: "an update must carry exactly one of Capture or Status",
            remedy: "send either a Capture item or a Status, not both or neither"),
        64019: Entry(
            meaning: "required payment information is incomplete",
            remedy: "capture every required item before completing"),
        64020: Entry(
            meaning: "a parameter has an invalid value", remedy: "check the request's values against the API reference"),
        64021: Entry(
            meaning: "a payment session is already running on this call",
            remedy: "complete or cancel the running session before starting another"),
        64022: Entry(
            meaning: "the card is not a valid test card (connector in TEST mode)",
            remedy: "use one of the documented test card numbers, or switch the connector to LIVE"),
        64023: Entry(
            meaning: "the bank account is not a valid test account (connector in TEST mode)",
            remedy: "use test account 12345678 or 123456789"),
        64024: Entry(
            meaning: "the connector is not approved for LIVE mode",
            remedy: "complete the connector's LIVE approval, or use TEST mode"),
    ]
}
