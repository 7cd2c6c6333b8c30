import Foundation
public import Logging
public import TwilioPayments
import NIOCore
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the ngrok tunnel gave no public URL: cases a host can switch on, each with a sentence
/// a user can act on. Diagnostics are ngrok's own last words, with the auth token redacted.
public enum TunnelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No `ngrok` executable at that path or on `PATH`.
    case executableNotFound(String)
    /// A local resource the agent needs could not be had (a free port, its configuration file,
    /// the child process itself).
    case couldNotStart(String)
    /// The agent exited before it reported a URL.
    case exited(status: Int32, diagnostics: String)
    /// The agent reported no https URL in time.
    case noURL(timeout: Duration, diagnostics: String)

    public var description: String {
        switch self {
        case .executableNotFound(let name):
            return
                "NGROK_AUTH_TOKEN is set but no ngrok executable was found (\(name)); install ngrok or set CALLBACK_BASE_URL instead"
        case .couldNotStart(let reason):
            return "could not start ngrok: \(reason)"
        case .exited(let status, let diagnostics):
            return "ngrok exited with status \(status) before reporting a URL: \(diagnostics)"
        case .noURL(let timeout, let diagnostics):
            return "ngrok did not report a public URL within \(timeout): \(diagnostics)"
        }
    }
}

/// How to run the ngrok agent.
public struct NgrokConfiguration: Sendable {
    /// The `ngrok` executable: a path, or a name looked up on `PATH`.
    public var executable: String
    /// `NGROK_AUTH_TOKEN`: passed to the child in its environment, never on its command line.
    public var authToken: Secret
    /// `NGROK_CUSTOM_DOMAIN`, when given.
    public var domain: String?
    /// The local port to expose.
    public var port: Int
    /// How long to wait for the agent to report its public URL.
    public var startupTimeout: Duration
    /// The environment the agent's is drawn from, as the host gives it (the executable passes
    /// its own; a library reads none). Only ``passedEnvironmentNames`` (and `LC_*`) reach the
    /// agent, with `NGROK_AUTHTOKEN` set from ``authToken``: the Twilio credentials,
    /// `DATABASE_URL` and the rest stay behind. Its `PATH` finds ``executable`` (else
    /// `/usr/local/bin:/usr/bin:/bin`).
    public var environment: [String: String]

    public init(
        executable: String = "ngrok", authToken: Secret, domain: String? = nil, port: Int,
        startupTimeout: Duration = .seconds(20),
        environment: [String: String] = [:]
    ) {
        self.executable = executable
        self.authToken = authToken
        self.domain = domain
        self.port = port
        self.startupTimeout = startupTimeout
        self.environment = environment
    }

    /// The variables of ``environment`` the agent gets: where to find programs, its home and
    /// temporary directory, the locale and time zone, the system's certificate roots, and the
    /// outbound proxy it must use to reach ngrok (which the agent reads from `http_proxy` and
    /// `https_proxy`). Locale variables `LC_*` pass too.
    public static let passedEnvironmentNames: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG", "LANGUAGE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    ]

    /// The agent's whole environment: the passed basics of ``environment`` and its auth token.
    public var childEnvironment: [String: String] {
        var child = environment.filter { Self.passedEnvironmentNames.contains($0.key) || $0.key.hasPrefix("LC_") }
        child["NGROK_AUTHTOKEN"] = authToken.revealed
        return child
    }
}

/// An ngrok agent running as a child process for the callback port, with the public URL read
/// from the agent's local API. ``stop()`` always ends the child; so does the tunnel's release;
/// and so does this process's death, however it dies (see ``guardScript``).
///
/// The agent runs with its traffic inspection off (`--inspect=false`): its local web interface,
/// which any local user can open, would otherwise keep every callback it forwarded, URL secrets
/// included. The local API the public URL is read from stays on, on a loopback port of its own.
/// The agent gets only the environment it needs (``NgrokConfiguration/childEnvironment``).
public final class NgrokTunnel: Sendable {
    /// The public `https://` base URL Twilio will call.
    public let publicURL: String
    /// The guard process (see ``guardScript``), which runs the agent.
    private let process: SupervisedProcess
    private let configFile: URL
    private let errorReader: FileHandle
    private let stopped = Mutex(false)

    private init(publicURL: String, process: SupervisedProcess, configFile: URL, errorReader: FileHandle) {
        self.publicURL = publicURL
        self.process = process
        self.configFile = configFile
        self.errorReader = errorReader
    }

    /// The agent runs under this small POSIX shell guard (the same on Linux and macOS), so that
    /// it cannot outlive this process. The guard's standard input is a pipe whose only writer is
    /// this process: when this process exits — even by SIGKILL, which no handler can catch — the
    /// kernel closes it, the guard's read ends, and the guard stops the agent (SIGTERM, then
    /// SIGKILL a second later). SIGTERM to the guard is passed on; the guard exits with the
    /// agent's status. (The watcher's input is the saved descriptor 3: a shell gives a
    /// background job `/dev/null` as its standard input unless told otherwise.)
    static let guardScript = #"""
        exec 3<&0
        "$@" </dev/null 3<&- &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null' TERM INT
        ( while read -r _; do :; done; kill -TERM "$child" 2>/dev/null; sleep 1; kill -KILL "$child" 2>/dev/null ) <&3 &
        watcher=$!
        exec 3<&-
        while :; do
            wait "$child"; status=$?
            kill -0 "$child" 2>/dev/null || break
        done
        kill "$watcher" 2>/dev/null
        exit "$status"
        """#

    deinit {
        terminate()
    }

    /// Starts the agent and waits for its public URL.
    public static func start(
        _ configuration: NgrokConfiguration, logger: Logger = Logger(label: "agent-payments.ngrok")
    ) async throws(TunnelError) -> NgrokTunnel {
        guard let executable = resolve(configuration.executable, path: configuration.environment["PATH"]) else {
            throw .executableNotFound(configuration.executable)
        }
        let apiPort: Int
        do {
            apiPort = try await freePort()
        } catch {
            throw .couldNotStart("no free loopback port for its local API: \(error)")
        }
        let configFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agent-payments-ngrok-\(UUID().uuidString).yml")
        let config = "version: \"2\"\nweb_addr: 127.0.0.1:\(apiPort)\nlog_level: warn\n"
        do {
            try Data(config.utf8).write(to: configFile, options: .atomic)
        } catch {
            throw .couldNotStart("its configuration file could not be written: \(error.localizedDescription)")
        }

        var arguments = [
            "http", "127.0.0.1:\(configuration.port)", "--inspect=false", "--config", configFile.path,
            "--log", "stderr", "--log-format", "logfmt",
        ]
        if let domain = configuration.domain { arguments += ["--url", domain] }
        let process: SupervisedProcess
        do {
            process = try SupervisedProcess(
                executable: "/bin/sh", arguments: ["-c", guardScript, "ngrok-guard", executable] + arguments,
                environment: configuration.childEnvironment)
        } catch {
            try? FileManager.default.removeItem(at: configFile)
            throw .couldNotStart(error.description)
        }
        let output = Mutex("")
        let errorReader = FileHandle(fileDescriptor: process.standardError, closeOnDealloc: true)
        errorReader.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            let chunk = String(decoding: data, as: UTF8.self)
            output.withLock { $0 = String(($0 + chunk).suffix(4000)) }
        }
        let token = configuration.authToken.revealed
        func diagnostics() -> String {
            output.withLock { $0 }.replacingOccurrences(of: token, with: "<redacted>").trimmingCharacters(
                in: .whitespacesAndNewlines)
        }

        let transport = URLSessionTransport()
        let deadline = ContinuousClock.now + configuration.startupTimeout
        let api = URL(string: "http://127.0.0.1:\(apiPort)/api/tunnels")!
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let status = process.exitStatus() {
                try? FileManager.default.removeItem(at: configFile)
                throw .exited(status: status, diagnostics: diagnostics())
            }
            if let response = try? await transport.send(
                HTTPRequest(method: "GET", url: api, headers: [], body: nil, timeout: .seconds(2))),
                response.status == 200,
                let listing = try? JSONDecoder().decode(TunnelList.self, from: response.body),
                let url = listing.tunnels.compactMap(\.public_url).first(where: { $0.hasPrefix("https://") })
            {
                logger.info("ngrok tunnel is up", metadata: ["url": "\(url)"])
                return NgrokTunnel(publicURL: url, process: process, configFile: configFile, errorReader: errorReader)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await stopChild(process.processID)
        close(process.lifeline)
        errorReader.readabilityHandler = nil
        try? FileManager.default.removeItem(at: configFile)
        if Task.isCancelled { throw .couldNotStart("start-up was cancelled") }
        throw .noURL(timeout: configuration.startupTimeout, diagnostics: diagnostics())
    }

    /// What the agent's local API lists (`GET /api/tunnels`).
    struct TunnelList: Decodable {
        struct Tunnel: Decodable { var public_url: String? }
        var tunnels: [Tunnel]
    }

    /// Whether the agent is still running.
    public var isRunning: Bool { !Self.hasExited(process.processID) }

    /// The process id of the guard that runs the agent (stopping it stops the agent).
    public var processIdentifier: Int32 { process.processID }

    /// Ends the agent: SIGTERM, then SIGKILL if it has not exited within a second, and waits
    /// until it is gone (reaped, so no zombie is left).
    public func stop() async {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if first {
            await Self.stopChild(process.processID)
            close(process.lifeline)
            errorReader.readabilityHandler = nil
        }
        try? FileManager.default.removeItem(at: configFile)
    }

    /// SIGTERM, a second's grace, SIGKILL, and reaping. Runs to the end even when the caller is
    /// cancelled (a shutting-down group cancels its parts): the waits must really wait, not spin.
    static func stopChild(_ pid: pid_t) async {
        guard pid > 0 else { return }
        await Task { await reap(pid) }.value
    }

    private static func reap(_ pid: pid_t) async {
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(1)
        while !hasExited(pid), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if !hasExited(pid) {
            kill(pid, SIGKILL)
            while !hasExited(pid) { try? await Task.sleep(for: .milliseconds(5)) }
        }
    }

    /// Whether the child `pid` has exited, reaping it if it has. Foundation's own monitor may
    /// reap it first; then the process is gone all the same.
    static func hasExited(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return true }
        if result < 0 { return errno == ECHILD || kill(pid, 0) != 0 }
        return false
    }

    private func terminate() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        // Closing the lifeline makes the guard stop the agent; SIGTERM makes it do so now.
        if !Self.hasExited(process.processID) { kill(process.processID, SIGTERM) }
        close(process.lifeline)
        errorReader.readabilityHandler = nil
        try? FileManager.default.removeItem(at: configFile)
    }

    private static func resolve(_ executable: String, path: String?) -> String? {
        if executable.contains("/") {
            return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil
        }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A loopback port nothing listens on right now (the agent's local API binds it a moment
    /// later): bound on port 0 through NIO, read, and released.
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(
            host: "127.0.0.1", port: 0
        ).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
