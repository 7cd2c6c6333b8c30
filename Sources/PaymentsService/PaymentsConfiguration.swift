public import CallbackHTTP
public import Foundation
public import PaymentFlow
public import TwilioPayments
public import TwilioSimulator

/// Everything a ``PaymentsSystem`` is assembled from, typed: which Twilio, where callbacks are
/// received and under which public URL, how long finished sessions stay, and the store.
public struct PaymentsConfiguration: Sendable {
    /// Which Twilio the coordinator talks to.
    public enum TwilioAPI: Sendable {
        /// api.twilio.com (or a regional edge, or a stand-in) with these credentials. The Auth
        /// Token, when the credentials carry one, validates every callback's signature.
        case live(TwilioCredentials, baseURL: URL = TwilioPaymentsClient.defaultBaseURL)
        /// The in-process ``TwilioSimulator`` on a loopback port: no account, no tunnel. Its
        /// simulated callers follow `scripts` (by call SID), or the default caller.
        case simulated(TwilioSimulator.Configuration, scripts: [CallSID: CallerScript] = [:])
    }

    /// The public base URL Twilio calls back (scheme, host and port; the path prefix is added).
    public enum PublicURL: Sendable {
        /// Known up front: a reverse proxy, a load balancer, a fixed tunnel.
        case explicit(String)
        /// An ngrok tunnel to the host's listener (its port from
        /// ``PaymentsSystem/serverRunning(_:)``), opened once it listens and stopped on
        /// shutdown. The token goes to the child's environment, never its command line;
        /// `environment` is what the agent's is drawn from (``NgrokConfiguration/environment``).
        case ngrok(
            authToken: Secret, domain: String? = nil, executable: String = "ngrok", environment: [String: String] = [:])
        /// `http://127.0.0.1:<bound port>` of the host's listener (from
        /// ``PaymentsSystem/serverRunning(_:)``): only something on this machine (the simulator)
        /// can call it.
        case loopback
        /// The host tells it with ``PaymentsSystem/setPublicBaseURL(_:)`` once it knows (say,
        /// when its own listener is bound); until then tools wait as for any other start-up.
        case provided

        /// Whether the URL comes from a tunnel opened at start (seconds, not milliseconds).
        public var isTunnel: Bool {
            if case .ngrok = self { return true }
            return false
        }
    }

    public var twilio: TwilioAPI
    public var publicURL: PublicURL
    /// Whether readiness waits for the host's listener to say it runs
    /// (``PaymentsSystem/serverRunning(_:)``), so that no callback URL is handed out before
    /// something receives it. On by default; a loopback or ngrok public URL needs it (it is made
    /// from the bound port). Off for a host whose listener already runs when the system starts.
    public var waitsForListener = true
    /// The path every callback URL starts with.
    public var callbackPathPrefix: String
    /// How long a finished session stays readable (and its callback URL answered).
    public var finishedRetention: Duration
    /// How often finished sessions past their retention are removed.
    public var expiryInterval: Duration
    /// How often the calls of silent sessions are checked with Twilio (a caller who hangs up
    /// while nothing is being captured may send no callback), and how long "silent" is.
    public var callCheckInterval: Duration
    public var silentAfter: Duration
    /// How long a start may wait for Twilio's answer before it counts as stranded (its replica
    /// died after storing it): the maintenance of every replica then sends its creation again
    /// with its stored key (``PaymentCoordinator/recoverStrandedStarts()``). Longer than a
    /// Twilio request's retry budget (20 s), so that a replica still sending it is left alone.
    public var strandedStartAfter: Duration = .seconds(30)
    /// Whether the calls' recordings are paused while a card is entered (``RecordingPausing``,
    /// `AGENT_PAYMENTS_PAUSE_RECORDINGS`): off by default.
    public var pauseRecordings: RecordingPauseMode = .off

    /// What a payment does to its call's recordings.
    public enum RecordingPauseMode: String, Sendable, CaseIterable {
        /// Nothing.
        case off
        /// Each running recording is paused before the payment is created and resumed when it
        /// finishes; a failure shows in the status and the log, and the payment goes on.
        case on
        /// As `on`, but a start whose recordings cannot be paused is refused.
        case required
    }
    /// Where sessions live, and how changes reach whoever waits: in memory by default; replicas
    /// share a store, a feed and ``callbackKey``.
    public var store: any PaymentStore
    public var changeFeed: any PaymentChangeFeed
    /// What may be charged, whatever an agent asks (``SpendingPolicy``): unlimited by default.
    public var policy: SpendingPolicy = .unlimited
    /// Where daily totals and amounts due are counted: in memory by default; replicas share one.
    public var ledger: any SpendingLedger = InMemorySpendingLedger()
    /// Where the notices of every change go (a webhook dispatcher), if anywhere.
    public var notices: (any PaymentNoticeSink)?
    /// Where the key callback secrets are derived from comes from: a random `Secret` per process
    /// by default; replicas share one (a shared database is the source of its own).
    public var callbackKey: any CallbackKeySource
    /// Where every command, callback and ended call is recorded (PCI DSS 10), if anywhere: a
    /// PostgreSQL table, JSON lines (``JSONLinesAuditTrail``) or a host's own.
    public var audit: (any AuditTrail)?
    /// This replica's name in audit records (`AGENT_PAYMENTS_REPLICA`, by default the host name
    /// and process id).
    public var replica: String = PaymentsConfiguration.defaultReplica

    /// The host name and process id: distinct for every process of a deployment.
    public static var defaultReplica: String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    public init(
        twilio: TwilioAPI, publicURL: PublicURL,
        callbackPathPrefix: String = "/twilio/payment-callbacks",
        finishedRetention: Duration = .seconds(3600), expiryInterval: Duration = .seconds(300),
        callCheckInterval: Duration = .seconds(10), silentAfter: Duration = .seconds(30),
        store: any PaymentStore = InMemoryPaymentStore(), changeFeed: any PaymentChangeFeed = InMemoryChangeFeed(),
        callbackKey: any CallbackKeySource = Secret(PathSecret.make() + PathSecret.make())
    ) {
        self.twilio = twilio
        self.publicURL = publicURL
        self.callbackPathPrefix = callbackPathPrefix
        self.finishedRetention = finishedRetention
        self.expiryInterval = expiryInterval
        self.callCheckInterval = callCheckInterval
        self.silentAfter = silentAfter
        self.store = store
        self.changeFeed = changeFeed
        self.callbackKey = callbackKey
    }

    /// A whole system against the in-process simulator, its callbacks on loopback: what the
    /// demo, the examples and `--simulate` run.
    public static func simulated(
        digitPacing: Duration = .milliseconds(150), scripts: [CallSID: CallerScript] = [:]
    ) -> PaymentsConfiguration {
        var simulator = TwilioSimulator.Configuration.offline(digitPacing: digitPacing)
        simulator.callbackHistoryLimit = 0 // nobody reads it in a served system
        return PaymentsConfiguration(twilio: .simulated(simulator, scripts: scripts), publicURL: .loopback)
    }
}

/// Why a configuration cannot be assembled, found before anything starts.
public enum PaymentsConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// ngrok and loopback URLs are made from the port of the host's listener, which a
    /// configuration that does not wait for it never hears of.
    case publicURLNeedsListener(String)
    /// The explicit public URL is not an absolute http(s) URL.
    case invalidPublicURL(String)
    /// The live Twilio API base URL is not an absolute http(s) URL.
    case invalidTwilioBaseURL(String)

    public var description: String {
        switch self {
        case .publicURLNeedsListener(let kind):
            return
                "a \(kind) public URL is made from the port of the host's listener: keep waitsForListener on, or give the URL explicitly or provide it later"
        case .invalidPublicURL(let url):
            return
                "the public callback URL must be an absolute http or https URL such as https://payments.example.com, got \"\(url)\""
        case .invalidTwilioBaseURL(let url):
            return
                "the Twilio API base URL must be an absolute http or https URL such as https://api.dublin.ie1.twilio.com, got \"\(url)\""
        }
    }
}

/// Why the system did not become ready: cases a host can switch on, each with a sentence a user
/// can act on.
public enum PaymentsStartError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host's listener, which serves the callback routes, could not listen (a busy port, an
    /// address not on this machine).
    case callbackListenerFailed(host: String, port: Int, reason: String)
    /// A step the host runs before its listener starts (``PaymentsSystem/preparing(_:)``: a
    /// database's migrations) failed; `reason` says why.
    case preparationFailed(reason: String)
    /// The in-process simulator could not listen.
    case simulatorFailed(reason: String)
    /// The ngrok tunnel gave no public URL.
    case tunnel(TunnelError)
    /// The system stopped before it was ready.
    case stopped
    /// ``PaymentsSystem/run()`` was called a second time; a system runs once.
    case alreadyRun

    public var description: String {
        switch self {
        case .callbackListenerFailed(let host, let port, let reason):
            return
                "the listener for Twilio's callbacks could not listen on \(host):\(port == 0 ? "<any free port>" : String(port)) (\(reason)); choose another address (CALLBACK_HOST and CALLBACK_PORT, or --http's)"
        case .preparationFailed(let reason):
            return reason
        case .simulatorFailed(let reason):
            return "the built-in Twilio simulator could not start: \(reason)"
        case .tunnel(let error):
            return error.description
        case .stopped:
            return "the payment system stopped before it was ready"
        case .alreadyRun:
            return "this payment system has already run; make a new PaymentsSystem to run again"
        }
    }
}
