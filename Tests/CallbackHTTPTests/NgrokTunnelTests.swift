import CallbackHTTP
import Foundation
import Testing
import TwilioPayments

/// ngrok supervision against a fake `ngrok` that serves the agent's local API. The fake finds
/// its mode beside itself (the agent gets only a few environment variables) and records its
/// arguments and whole environment there.
@Suite(.serialized) struct NgrokTunnelTests {
    static let fake = #"""
        #!/usr/bin/env python3
        import http.server, json, os, sys, time
        args = sys.argv[1:]
        here = os.path.dirname(os.path.abspath(sys.argv[0]))
        with open(os.path.join(here, "log.json"), "w") as log:
            json.dump({"argv": args, "pid": os.getpid(), "token": os.environ.get("NGROK_AUTHTOKEN"), "environment": dict(os.environ)}, log)
        mode = open(os.path.join(here, "mode")).read().strip()
        if mode == "crash":
            sys.stderr.write("ERROR: authentication failed: token %s is invalid\n" % os.environ.get("NGROK_AUTHTOKEN"))
            sys.exit(1)
        if mode == "silent":
            time.sleep(60)
        config = open(args[args.index("--config") + 1]).read()
        host, port = [line.split(": ")[1] for line in config.splitlines() if line.startswith("web_addr")][0].split(":")
        url = "https://" + (args[args.index("--url") + 1] if "--url" in args else "fake-tunnel.ngrok.test")
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"tunnels": [{"public_url": url.replace("https://", "http://")}, {"public_url": url}]}).encode()
                self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        http.server.HTTPServer((host, int(port)), Handler).serve_forever()
        """#

    /// A fake agent that behaves as `mode` says: `ok`, `crash` or `silent`.
    func install(mode: String) throws -> (executable: String, log: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-ngrok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let executable = directory.appendingPathComponent("ngrok").path
        // Written through a descriptor closed on exec: a child another test spawns meanwhile must
        // not inherit it open for writing, or running the script fails with ETXTBSY.
        let descriptor = open(executable, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
        let bytes = Array(Self.fake.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown) }
        try Data(mode.utf8).write(to: directory.appendingPathComponent("mode"))
        return (executable, directory.appendingPathComponent("log.json").path)
    }

    func launchLog(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    @Test func startsDiscoversTheURLKeepsTheTokenOffTheCommandLineAndStops() async throws {
        let (executable, log) = try install(mode: "ok")
        let tunnel = try await NgrokTunnel.start(
            NgrokConfiguration(
                executable: executable, authToken: Secret("tok_secret_123"),
                domain: "pay.example.com", port: 8080,
                environment: ProcessInfo.processInfo.environment))
        #expect(tunnel.publicURL == "https://pay.example.com")
        let launched = try launchLog(log)
        let argv = launched["argv"] as! [String]
        #expect(launched["token"] as? String == "tok_secret_123")
        #expect(!argv.contains { $0.contains("tok_secret_123") }, "the token never appears in ps")
        #expect(argv.starts(with: ["http", "127.0.0.1:8080"]))
        #expect(tunnel.isRunning)
        await tunnel.stop()
        #expect(!tunnel.isRunning)
    }

    @Test func theAgentRunsWithItsInspectorOffAndOnlyTheEnvironmentItNeeds() async throws {
        let (executable, log) = try install(mode: "ok")
        let parent = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": "/home/payments",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "https_proxy": "http://proxy.internal:3128",
            "TWILIO_AUTH_TOKEN": "auth-token-secret", "TWILIO_API_SECRET": "api-secret", "TWILIO_API_KEY": "SK123",
            "DATABASE_URL": "postgres://u:db-password@db/x",
            "AGENT_PAYMENTS_CALLBACK_KEY": String(repeating: "k", count: 32),
            "NGROK_AUTH_TOKEN": "tok_secret_789", "AWS_SECRET_ACCESS_KEY": "aws",
        ]
        let tunnel = try await NgrokTunnel.start(
            NgrokConfiguration(
                executable: executable, authToken: Secret("tok_secret_789"),
                port: 8080, environment: parent))
        let launched = try launchLog(log)
        let argv = launched["argv"] as! [String]
        let environment = launched["environment"] as! [String: String]
        #expect(argv.contains("--inspect=false"), "the request inspector is off: \(argv)")
        for name in [
            "TWILIO_AUTH_TOKEN", "TWILIO_API_SECRET", "TWILIO_API_KEY", "DATABASE_URL", "AGENT_PAYMENTS_CALLBACK_KEY",
            "NGROK_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY",
        ] {
            #expect(environment[name] == nil, "\(name) stays in this process")
        }
        #expect(!environment.values.contains { $0.contains("auth-token-secret") || $0.contains("db-password") })
        #expect(environment["NGROK_AUTHTOKEN"] == "tok_secret_789")
        #expect(
            environment["HOME"] == "/home/payments" && environment["LANG"] == "C.UTF-8"
                && environment["LC_ALL"] == "C.UTF-8")
        // (A `python3` shim may add to PATH and set variables of its own; the shell sets PWD.)
        #expect(
            environment["PATH"]?.contains(parent["PATH"]!) == true
                && environment["https_proxy"] == "http://proxy.internal:3128")
        await tunnel.stop()
    }

    @Test func reportsACrashWithoutTheToken() async throws {
        let (executable, _) = try install(mode: "crash")
        do {
            _ = try await NgrokTunnel.start(
                NgrokConfiguration(
                    executable: executable, authToken: Secret("tok_secret_456"), port: 8080,
                    environment: ProcessInfo.processInfo.environment))
            Issue.record("started")
        } catch {
            #expect(
                error.description.contains("exited with status 1")
                    && error.description.contains("authentication failed"), "\(error)")
            #expect(!error.description.contains("tok_secret_456"))
        }
    }

    @Test func timesOutAndStopsASilentAgent() async throws {
        let (executable, log) = try install(mode: "silent")
        do {
            _ = try await NgrokTunnel.start(
                NgrokConfiguration(
                    executable: executable, authToken: Secret("t"), port: 8080,
                    // Long enough for the fake agent to start and write its
                    // pid on a loaded machine (0.8 s was not, in a full run).
                    startupTimeout: .seconds(3)))
            Issue.record("started")
        } catch {
            #expect(error.description.contains("did not report a public URL"))
        }
        // The fake agent is the guard's child: once the guard has stopped it, it is reaped by
        // whoever adopted it, a moment later. Waited for (within a liveness bound), not assumed.
        let pid = try launchLog(log)["pid"] as! Int
        let deadline = ContinuousClock.now + .seconds(20)
        while kill(pid_t(pid), 0) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(kill(pid_t(pid), 0) != 0, "the child was stopped")
    }

    @Test func explainsAMissingExecutable() async {
        do {
            _ = try await NgrokTunnel.start(
                NgrokConfiguration(executable: "/nonexistent/ngrok", authToken: Secret("t"), port: 1))
            Issue.record("started")
        } catch {
            #expect(error.description.contains("CALLBACK_BASE_URL"))
        }
    }
}
