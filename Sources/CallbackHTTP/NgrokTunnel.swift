import Foundation
public import Logging
public import TwilioPayments
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why no public URL could be had.
public struct PublicURLError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
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

    public init(executable: String = "ngrok", authToken: Secret, domain: String? = nil, port: Int, startupTimeout: Duration = .seconds(20)) {
        self.executable = executable
        self.authToken = authToken
        self.domain = domain
        self.port = port
        self.startupTimeout = startupTimeout
    }
}

/// An ngrok agent running as a child process for the callback port, with the public URL read
/// from the agent's local API. ``stop()`` always ends the child; so does the tunnel's release.
public final class NgrokTunnel: Sendable {
    /// The public `https://` base URL Twilio will call.
    public let publicURL: String
    private let process: Process
    private let configFile: URL
    private let stopped = Mutex(false)

    private init(publicURL: String, process: Process, configFile: URL) {
        self.publicURL = publicURL
        self.process = process
        self.configFile = configFile
    }

    deinit {
        terminate()
    }

    /// Starts the agent and waits for its public URL.
    public static func start(_ configuration: NgrokConfiguration, logger: Logger = Logger(label: "agent-payments.ngrok")) async throws(PublicURLError) -> NgrokTunnel {
        guard let executable = resolve(configuration.executable) else {
            throw PublicURLError(description: "NGROK_AUTH_TOKEN is set but no ngrok executable was found (\(configuration.executable)); install ngrok or set CALLBACK_BASE_URL instead")
        }
        let apiPort = freePort()
        let configFile = FileManager.default.temporaryDirectory.appendingPathComponent("agent-payments-ngrok-\(UUID().uuidString).yml")
        let config = "version: \"2\"\nweb_addr: 127.0.0.1:\(apiPort)\nlog_level: warn\n"
        do {
            try Data(config.utf8).write(to: configFile, options: .atomic)
        } catch {
            throw PublicURLError(description: "could not write the ngrok configuration: \(error.localizedDescription)")
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        var arguments = ["http", "127.0.0.1:\(configuration.port)", "--config", configFile.path, "--log", "stderr", "--log-format", "logfmt"]
        if let domain = configuration.domain { arguments += ["--url", domain] }
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NGROK_AUTHTOKEN"] = configuration.authToken.revealed
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let output = Mutex("")
        errors.fileHandleForReading.readabilityHandler = { handle in
            let chunk = String(decoding: handle.availableData, as: UTF8.self)
            output.withLock { $0 = String(($0 + chunk).suffix(4000)) }
        }
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: configFile)
            throw PublicURLError(description: "could not start ngrok: \(error.localizedDescription)")
        }
        let token = configuration.authToken.revealed
        func diagnostics() -> String {
            output.withLock { $0 }.replacingOccurrences(of: token, with: "<redacted>").trimmingCharacters(in: .whitespacesAndNewlines)
        }

        let transport = URLSessionTransport()
        let deadline = ContinuousClock.now + configuration.startupTimeout
        let api = URL(string: "http://127.0.0.1:\(apiPort)/api/tunnels")!
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                try? FileManager.default.removeItem(at: configFile)
                throw PublicURLError(description: "ngrok exited with status \(process.terminationStatus) before reporting a URL: \(diagnostics())")
            }
            if let response = try? await transport.send(HTTPRequest(method: "GET", url: api, headers: [], body: nil, timeout: .seconds(2))),
               response.status == 200,
               let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
               let tunnels = object["tunnels"] as? [[String: Any]],
               let url = tunnels.compactMap({ $0["public_url"] as? String }).first(where: { $0.hasPrefix("https://") }) {
                logger.info("ngrok tunnel is up", metadata: ["url": "\(url)"])
                return NgrokTunnel(publicURL: url, process: process, configFile: configFile)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await stopChild(process)
        try? FileManager.default.removeItem(at: configFile)
        throw PublicURLError(description: "ngrok did not report a public URL within \(configuration.startupTimeout): \(diagnostics())")
    }

    /// Whether the agent is still running.
    public var isRunning: Bool { !Self.hasExited(process.processIdentifier) }

    /// The agent's process id.
    public var processIdentifier: Int32 { process.processIdentifier }

    /// Ends the agent: SIGTERM, then SIGKILL if it has not exited within a second, and waits
    /// until it is gone (reaped, so no zombie is left).
    public func stop() async {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if first { await Self.stopChild(process) }
        try? FileManager.default.removeItem(at: configFile)
    }

    /// SIGTERM, a second's grace, SIGKILL, and reaping.
    static func stopChild(_ process: Process) async {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
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
        if !Self.hasExited(process.processIdentifier) { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: configFile)
    }

    private static func resolve(_ executable: String) -> String? {
        if executable.contains("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A port nothing listens on right now (the agent's local API binds it a moment later).
    static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
