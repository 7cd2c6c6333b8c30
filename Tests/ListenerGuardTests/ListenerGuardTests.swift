import Foundation
import Hummingbird
import HTTPTestSupport
import ListenerGuard
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bounded slow-client attack on a real loopback listener: half-open heads, a trickling body,
/// an idle keep-alive connection, and more connections than the cap. Limits are short so the
/// suite stays quick; every wait is bounded by a socket timeout that only guards against a hang.
@Suite(.serialized) struct ListenerGuardTests {
    static let limits = ListenerLimits(headTimeout: .milliseconds(400), minimumBodyRate: 2_000, rateWindow: .milliseconds(300),
                                       requestTimeout: .seconds(3), idleTimeout: .milliseconds(400), maximumConnections: 200)

    /// Serves `/healthz` and an echoing `POST /echo` with `limits` while `body` runs.
    func withServer(_ limits: ListenerLimits = Self.limits, _ body: (Int) async throws -> Void) async throws {
        var logger = Logger(label: "guard-test")
        logger.logLevel = .critical
        let router = Router()
        router.get("healthz") { _, _ in "ok" }
        router.post("echo") { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            return "\(buffer.readableBytes)"
        }
        let port = PortBox()
        let app = Application(router: router, server: .guardedHTTP1(limits: limits, logger: logger),
                              configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { port.set($0.localAddress?.port ?? 0) }, logger: logger)
        let running = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { running.cancel() }
        while port.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
        try await body(port.value)
    }

    @Test func aHeadThatNeverEndsIsClosed() async throws {
        try await withServer { port in
            let socket = try TestSocket(port: port)
            try socket.write("POST /echo HTTP/1.1\r\nHost: x\r\n")   // and then nothing
            #expect(await socket.readUntilClosed().isEmpty, "closed without an answer")
        }
    }

    @Test func aConnectionThatSendsNothingIsClosed() async throws {
        try await withServer { port in
            let socket = try TestSocket(port: port)
            #expect(await socket.readUntilClosed().isEmpty)
        }
    }

    @Test func aBodyBelowTheFloorRateIsClosed() async throws {
        try await withServer { port in
            let socket = try TestSocket(port: port)
            try socket.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            var closed = false
            for _ in 0..<200 where !closed {
                let refused = (try? socket.write("a")) == nil
                closed = refused ? true : await socket.isClosed(waitingMilliseconds: 50)
            }
            #expect(closed, "a trickling body is cut off")
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterItsRequest() async throws {
        try await withServer { port in
            let socket = try TestSocket(port: port)
            try socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = await socket.readUntilClosed()
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.hasSuffix("ok"), "answered, kept alive, then closed when idle: \(answer)")
        }
    }

    @Test func aPromptClientIsServedWholeBodiesIncluded() async throws {
        try await withServer { port in
            let socket = try TestSocket(port: port)
            let body = String(repeating: "b", count: 50_000)
            try socket.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
            #expect(await socket.readUntilClosed().hasSuffix("50000"))
        }
    }

    @Test func pastTheCapNewConnectionsAreRefusedAtOnce() async throws {
        var limits = Self.limits
        limits.maximumConnections = 20
        limits.headTimeout = .seconds(30)   // the held connections stay for the whole test
        limits.idleTimeout = .seconds(30)
        try await withServer(limits) { port in
            let held = try (0..<20).map { _ in try TestSocket(port: port) }
            // Each held connection is answered once (and kept alive), so the server has surely
            // taken all twenty before the next one comes.
            for socket in held {
                try socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await socket.read(until: "ok").hasPrefix("HTTP/1.1 200"))
            }
            // Reading before writing, so the refusal is not lost to a reset for unread data.
            let extra = try TestSocket(port: port)
            let refusal = await extra.readUntilClosed()
            #expect(refusal.hasPrefix("HTTP/1.1 503 Service Unavailable"), "\(refusal)")
            for socket in held {
                let closed = await socket.isClosed(waitingMilliseconds: 0)
                #expect(!closed, "the held connections are still open")
            }
            for socket in held { socket.shut() }
            // Slots come back once the held connections are gone.
            var served = ""
            for _ in 0..<100 where !served.hasPrefix("HTTP/1.1 200") {
                let socket = try TestSocket(port: port)
                try socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                served = await socket.readUntilClosed()
            }
            #expect(served.hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test func underABoundedSlowlorisAttackGenuineRequestsAreServed() async throws {
        try await withServer { port in
            // 150 attackers, each with half a request head, on a listener that allows 200.
            let attackers = try (0..<150).map { _ in try TestSocket(port: port) }
            for attacker in attackers { try attacker.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-") }
            // During the attack, a genuine client is served.
            let genuine = try TestSocket(port: port)
            try genuine.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(await genuine.readUntilClosed().hasPrefix("HTTP/1.1 200"))
            // And the attackers are all cut off.
            for attacker in attackers { #expect(await attacker.readUntilClosed().isEmpty) }
        }
    }

    @Test func limitsComeFromTheEnvironmentAndBadValuesAreNamed() throws {
        let limits = try ListenerLimits.fromEnvironment(["AGENT_PAYMENTS_HEAD_TIMEOUT_MS": "2500", "AGENT_PAYMENTS_MAX_CONNECTIONS": "77"])
        #expect(limits.headTimeout == .milliseconds(2500) && limits.maximumConnections == 77)
        #expect { try ListenerLimits.fromEnvironment(["AGENT_PAYMENTS_IDLE_TIMEOUT_MS": "soon"]) } throws: { error in
            (error as? ListenerLimitsError)?.description == "AGENT_PAYMENTS_IDLE_TIMEOUT_MS must be a positive integer, got \"soon\""
        }
    }

    @Test func theSoftFileLimitRisesToTheHardOne() {
        let raised = FileDescriptorLimit.raiseSoftLimitToHard()
        let now = FileDescriptorLimit.current()
        #expect(raised.after == now.soft && raised.after >= raised.before)
        #if os(Linux)
        #expect(now.soft == now.hard)
        #endif
    }
}
