// The PostgreSQL store under load, on a throwaway cluster on this machine (Benchmarks/run
// starts it and passes its URL):
// - signed callbacks per second through the callback receiver's real socket into the
//   coordinator and the PostgreSQL store (each one a compare-and-set with NOTIFY, from the
//   coordinator's snapshot of the session; the other replica re-reads it), with p50/p99, from wrk
//   (1 thread, 16 connections) over 1,000 live sessions, beside pgbench on the same statements;
// - cross-replica notification latency: a write through one store instance until a subscriber of
//   another instance's change feed (its own pool and LISTEN connection) has the new version,
//   p50/p99, at rest and while the callback load runs;
// - the resident memory of an `agent-payments --http` replica that has heard of 10,000 live
//   sessions (written by another replica), against the same replica at rest;
// - with --cluster-dir (the throwaway cluster's folder, stopped and started again by
//   scripts/pg-throwaway): how long a store request takes to be refused while the server is
//   stopped (the docs promise requestTimeout, 2 s) and how soon requests work once it is back.
// Usage: PostgresBenchmark --database-url URL --server PATH/agent-payments [--cluster-dir DIR]
//        [--seconds S] [--sessions N] [--smoke]
import BenchmarkSupport
import CallbackHTTP
import CallbackServing
import Foundation
import Logging
import MCPHTTP
import NIOCore
import NIOPosix
import PaymentFlow
import PaymentStorePostgres
import Synchronization
import TwilioPayments

/// pgbench beside the server this harness talks to: on the PATH, else in the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout, where `scripts/pg-throwaway` finds initdb).
func pgbenchExecutable() -> String {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(directory)/pgbench"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
    let newest = versions.compactMap { Int($0) }.max()
    return newest.map { "/usr/lib/postgresql/\($0)/bin/pgbench" } ?? "/usr/lib/postgresql/<version>/bin/pgbench"
}

/// What `process` wrote to `output` (a few lines: a pipe holds them), once it has exited, waited
/// for without blocking a thread: tasks run on NIO's event loops here, and a blocked loop stalls
/// every connection it serves — the store's, the change feed's, the callbacks' under measure.
func outputOnExit(_ process: Process, _ output: Pipe, within bound: Duration = .seconds(120)) async -> Data {
    let deadline = ContinuousClock.now + bound
    while process.isRunning {
        if ContinuousClock.now > deadline {
            process.terminate()
            giveUp(
                "\(process.executableURL?.lastPathComponent ?? "a child") did not finish",
                because: "still running after \(bound)")
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return output.fileHandleForReading.readDataToEndOfFile()
}

/// No Twilio: callbacks need none.
struct NoTwilio: TwilioPaymentsAPI {
    func createPayment(
        callSID: CallSID, options: PaymentSessionOptions, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource { throw .invalidRequest(["not in this benchmark"]) }
    func updatePayment(
        callSID: CallSID, paymentSID: PaymentSID, update: PaymentUpdate, idempotencyKey: String,
        statusCallback: String
    ) async throws(TwilioError) -> PaymentResource { throw .invalidRequest(["not in this benchmark"]) }
    func fetchCall(_ callSID: CallSID) async throws(TwilioError) -> CallResource {
        throw .invalidRequest(["not in this benchmark"])
    }
}

/// The PostgreSQL store, counting the sessions read by a callback URL's secret (the read a callback
/// makes when the coordinator's published snapshot does not hold its session).
final class CountingStore: PaymentStore {
    let store: PostgresPaymentStore
    let readsBySecret = Atomic<Int>(0)

    init(store: PostgresPaymentStore) { self.store = store }

    func session(_ paymentSID: PaymentSID) async throws(PaymentStoreError) -> PaymentSession? {
        try await store.session(paymentSID)
    }
    func session(id: String) async throws(PaymentStoreError) -> PaymentSession? { try await store.session(id: id) }
    func session(callbackSecretHash hash: String) async throws(PaymentStoreError) -> PaymentSession? {
        readsBySecret.add(1, ordering: .relaxed)
        return try await store.session(callbackSecretHash: hash)
    }
    func compareAndSet(_ session: PaymentSession, expectedVersion: UInt64?) async throws(PaymentStoreError) -> Bool {
        try await store.compareAndSet(session, expectedVersion: expectedVersion)
    }
    func activeSessions() async throws(PaymentStoreError) -> [PaymentSession] { try await store.activeSessions() }
    func activeSessions(updatedBefore date: Date) async throws(PaymentStoreError) -> [PaymentSession] {
        try await store.activeSessions(updatedBefore: date)
    }
    func sessions(onCall callSID: CallSID) async throws(PaymentStoreError) -> [PaymentSession] {
        try await store.sessions(onCall: callSID)
    }
    func expireFinished(updatedBefore date: Date) async throws(PaymentStoreError) -> Int {
        try await store.expireFinished(updatedBefore: date)
    }
}

/// The receiver's sink: the coordinator, as in the payments system.
struct CoordinatorSink: CallbackSink {
    let coordinator: PaymentCoordinator
    func knows(secret: String) async throws -> Bool { try await coordinator.knowsCallbackSecret(secret) }
    func deliver(secret: String, callback: PaymentStatusCallback) async throws -> Bool {
        try await coordinator.receiveCallback(secret: secret, callback)
    }
}

@main
enum PostgresBenchmarkMain {
    /// Synchronous, as `agent-payments --http`'s entry (Sources/agent-payments/Entry.swift): NIO's
    /// event loops become the executor before any task exists (MCPHTTP's `EventLoopExecutor`,
    /// which also works where NIO's own installer cannot, in these static executables), so the
    /// receiver, the flow and PostgresNIO share threads instead of hopping between them: replicas
    /// on a shared database serve MCP over HTTP.
    static func main() {
        let takenOver = EventLoopExecutor.install()
        Task {
            await run(takenOver: takenOver)
            exit(0)
        }
        dispatchMain()
    }

    static func run(takenOver: Bool) async {
        guard let databaseURL = textOption("--database-url") else {
            giveUp(
                "no database", because: "--database-url is missing",
                run: "Benchmarks/run starts a throwaway PostgreSQL and passes it")
        }
        let serverPath = textOption("--server").map(requireExecutable)
        let seconds = option("--seconds", 10, smoke: 1)
        let sessionCount = option("--sessions", 10_000, smoke: 200)
        let connections = option("--connections", 16)
        let liveForCallbacks = isSmoke ? 50 : 1_000
        let latencySamples = isSmoke ? 50 : 2_000

        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "postgres-benchmark")
        logger.logLevel = .error
        let configuration = must("reading the database URL") { try PostgresDatabaseConfiguration(url: databaseURL) }
        let replicaA = PostgresPaymentDatabase(configuration: configuration, logger: logger)
        let replicaB = PostgresPaymentDatabase(configuration: configuration, logger: logger)
        let runA = Task { await replicaA.run() }
        let runB = Task { await replicaB.run() }
        let key = await must("migrating and reading the callback key") {
            try await replicaA.prepare(waitingUpTo: .seconds(20))
        }
        _ = await must("preparing the second store") { try await replicaB.prepare(waitingUpTo: .seconds(20)) }
        _ = await must("emptying the sessions table") {
            try await replicaA.client.query("TRUNCATE agent_payments_sessions")
        }

        // MARK: Sessions with a capture under way

        let token = Secret("0123456789abcdef0123456789abcdef")
        let stamp = Date()
        func call(_ n: Int) -> CallSID { CallSID(validated: "CA" + String(format: "%032x", n)) }
        func payment(_ n: Int) -> PaymentSID { PaymentSID(validated: "PK" + String(format: "%032x", n)) }

        /// Stores `count` sessions from `first` (card number being captured); returns their secrets.
        func storeSessions(_ range: Range<Int>, in database: PostgresPaymentDatabase) async -> [String] {
            await withTaskGroup(of: (Int, String).self) { group in
                var secrets = [String](repeating: "", count: range.count)
                var next = range.lowerBound
                func add() {
                    let n = next
                    next += 1
                    group.addTask {
                        let secret = CallbackSecretHash.secret(for: "bench-\(n)", key: key)
                        let fresh = PaymentSession(
                            callSID: call(n), configuration: PaymentConfiguration(), at: stamp, id: "bench-\(n)",
                            callbackSecretHash: CallbackSecretHash.of(secret))
                        let created = PaymentReducer.reduce(fresh, .sessionCreated(payment(n), at: stamp)).session
                        let capturing = PaymentReducer.reduce(
                            created, .captureRequested(.cardNumber, at: stamp, idempotencyKey: "k\(n)")
                        ).session
                        _ = await must("storing a session") {
                            try await database.store.compareAndSet(capturing, expectedVersion: nil)
                        }
                        return (n, secret)
                    }
                }
                for _ in 0..<min(32, range.count) { add() }
                for await (n, secret) in group {
                    secrets[n - range.lowerBound] = secret
                    if next < range.upperBound { add() }
                }
                return secrets
            }
        }

        // MARK: 1. Callbacks through the receiver into PostgreSQL

        let counting = CountingStore(store: replicaA.store)
        let coordinator = PaymentCoordinator(
            api: NoTwilio(), store: counting, feed: replicaA.feed,
            callbackURLs: StaticCallbackURLProvider(baseURL: "http://127.0.0.1/unused"), callbackKey: key)
        let receiver = CallbackReceiver(
            configuration: CallbackReceiverConfiguration(authToken: token),
            sink: CoordinatorSink(coordinator: coordinator),
            logger: logger)
        // The receiver is routes: served as the server serves them, on a guarded listener.
        let server = await serveCallbacks(receiver, logger: logger)
        // As the payments system does: the coordinator's snapshot follows the change feed, and
        // holds the sessions once the feed has announced them (written here through the store).
        let following = Task { await coordinator.followChanges() }
        defer { following.cancel() }
        let secrets = await storeSessions(0..<liveForCallbacks, in: replicaA)
        // The statistics a running deployment's table has (autovacuum analyses it within a minute
        // of such a change): without them, the plans the server prepares for its statements
        // would be those of a table it still believes empty.
        _ = await must("analysing the sessions table") {
            try await replicaA.client.query("ANALYZE agent_payments_sessions")
        }
        let heard = ContinuousClock.now
        while (0..<liveForCallbacks).contains(where: { coordinator.publishedSession(payment($0)) == nil }) {
            guard ContinuousClock.now - heard < .seconds(20) else {
                giveUp("the change feed did not announce the stored sessions", because: "not all heard within 20 s")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }

        // Two callbacks per session, alternating while the caller types (each one changes the session,
        // so each is a stored write): path, signature and body of each, for wrk's script.
        // The two of a session are a round apart, never in flight together (16 requests at a time over
        // 1,000 sessions), so each one finds the other's value stored and changes it.
        var entries: [String] = []
        for masked in ["xxxx", "xxxxxxxx"] {
            for (n, secret) in secrets.enumerated() {
                let url = must("building a callback URL") { try receiver.callbackURL(secret: secret) }
                let path = String(
                    url[
                        url.range(of: "/", options: [], range: url.index(url.startIndex, offsetBy: 8)..<url.endIndex)!
                            .lowerBound...])
                let fields: [(String, String)] = [
                    ("AccountSid", "AC" + String(repeating: "a1", count: 16)), ("CallSid", call(n).rawValue),
                    ("Sid", payment(n).rawValue),
                    ("Capture", "payment-card-number"), ("PartialResult", "true"), ("PaymentCardNumber", masked),
                    ("PaymentMethod", "credit-card"), ("ChargeAmount", "9.99"), ("ErrorType", ""),
                ]
                let signature = WebhookSignature(authToken: token).sign(url: url, parameters: fields)
                entries.append("{\"\(path)\",\"\(signature)\",\"\(FormEncoding.encode(fields))\"}")
            }
        }
        let baseURL = must("building the base URL") { try receiver.callbackURL(secret: secrets[0]) }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("postgres-bench-\(getpid()).lua")
        let wrkPath = requireExecutableOrExplain(
            "/usr/bin/wrk", install: "apt-get install wrk (Benchmarks/run installs it)")
        must("writing the wrk script") {
            try """
            local entries = {\(entries.joined(separator: ",\n"))}
            local counter = 0
            request = function()
              counter = counter + 1
              local e = entries[(counter % #entries) + 1]
              return wrk.format("POST", e[1], {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = e[2]}, e[3])
            end
            done = function(summary, latency, requests)
              io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
                summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
            end
            """.write(to: script, atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(at: script) }

        /// Writes through A until B's feed hands over that version, `count` times, one after another
        /// (sessions of their own); the milliseconds of each.
        func crossReplicaLatencies(_ count: Int, from first: Int) async -> [Double] {
            let changes = replicaB.feed.subscribe()
            let (arrivals, arrival) = AsyncStream<(String, ContinuousClock.Instant)>.makeStream()
            let listener = Task {
                for await session in changes where session.id.hasPrefix("latency-") {
                    arrival.yield((session.id, ContinuousClock.now))
                }
            }
            defer { listener.cancel() }
            // A change that never arrives ends the benchmark rather than hanging it.
            let progress = Atomic<Int>(0)
            let watchdog = Task {
                var seen = -1
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(10))
                    let now = progress.load(ordering: .relaxed)
                    if now == seen, !Task.isCancelled {
                        giveUp("a change never reached the other store's feed", because: "no progress for 10 s")
                    }
                    seen = now
                }
            }
            defer { watchdog.cancel() }
            var iterator = arrivals.makeAsyncIterator()
            var latencies: [Double] = []
            for n in first..<(first + count) {
                let id = "latency-\(n)"
                let session = PaymentSession(
                    callSID: call(1_000_000 + n), configuration: PaymentConfiguration(), at: stamp, id: id,
                    callbackSecretHash: String(format: "%064x", 1_000_000 + n))
                let start = ContinuousClock.now
                _ = await must("writing through the first store") {
                    try await replicaA.store.compareAndSet(session, expectedVersion: nil)
                }
                while let (heard, at) = await iterator.next() {
                    guard heard == id else { continue }
                    let elapsed = at - start
                    latencies.append(
                        Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                    break
                }
                progress.add(1, ordering: .relaxed)
            }
            return latencies
        }

        let idle = await crossReplicaLatencies(latencySamples, from: 0)

        let readsBefore = counting.readsBySecret.load(ordering: .relaxed)
        let (statementsBefore, writesBefore, _) = replicaA.store.groupCommitStatistics
        let rereadsBefore = (replicaA.feed.rereadStatistics, replicaB.feed.rereadStatistics)
        let wrk = Process()
        wrk.executableURL = URL(fileURLWithPath: wrkPath)
        wrk.arguments = ["-t1", "-c\(connections)", "-d\(seconds)s", "-s", script.path, baseURL]
        let output = Pipe()
        wrk.standardOutput = output
        must("starting wrk") { try wrk.run() }
        // Sampled while the callback load runs: a little after it starts, for about half its length.
        try? await Task.sleep(for: .milliseconds(300))
        let underLoad = await crossReplicaLatencies(isSmoke ? 20 : max(100, seconds * 40), from: latencySamples)
        let data = await outputOnExit(wrk, output)
        server.cancel()
        let readsBySecret = counting.readsBySecret.load(ordering: .relaxed) - readsBefore

        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
            giveUp(
                "wrk produced no result",
                because: text.isEmpty ? "no output" : text.replacingOccurrences(of: "\n", with: " "))
        }
        let numbers = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        guard numbers.count == 6 else { giveUp("wrk's result line is malformed", because: String(line)) }
        let (requests, durationMicros, p50, p99, errors, statusErrors) = (
            numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5]
        )
        // Every accepted callback is one stored version: the versions gained are the writes.
        let versions: Int64 = await must("counting stored versions") {
            let rows = try await replicaA.client.query(
                "SELECT coalesce(sum(version), 0)::bigint FROM agent_payments_sessions WHERE id LIKE 'bench-%'")
            for try await total in rows.decode(Int64.self) { return total }
            return 0
        }
        let writes = Int(versions) - 3 * liveForCallbacks // each started at version 3 (created, capture requested)
        let perSecond = Double(requests) / (Double(durationMicros) / 1e6)

        // What the database itself does with a callback's statements on this cluster, once the
        // callback load is over (issue 30 item 4's comparison): pgbench, prepared as ours are, on a
        // copy of the same 1,000 sessions with the same indexes; its notifications go to a channel
        // no replica listens to, so the replicas' own work stays out of the database's figure.
        // Twice:
        // - one callback per transaction at the same 16 connections: the compare-and-set with its
        //   notify (the session's JSON re-parsed into the row, as ours is sent and parsed) and the
        //   other replica's re-read of it, what one callback asks of the database without group
        //   commit (the database's ceiling for that, its notifying commits being serial);
        // - the statements as the server now sends them under this load (GroupCommit): as many
        //   compare-and-sets per statement as it averaged, as many statements at once as it runs
        //   (one), and the re-read of them all in one; each client on sessions of its own, as a
        //   session is never in two running statements.
        let group = replicaA.store.groupCommitStatistics
        let rereadsAfter = (replicaA.feed.rereadStatistics, replicaB.feed.rereadStatistics)
        let statements = group.statements - statementsBefore
        let perStatement = statements > 0 ? Double(group.writes - writesBefore) / Double(statements) : 1
        let rows = max(1, Int(perStatement.rounded()))
        let groupClients = PostgresPaymentStore.groupStatementsRunning
        let share = liveForCallbacks / groupClients
        let scripts = [
            """
            \\set n random(0, \(liveForCallbacks - 1))
            WITH changed AS (UPDATE pgbench_sessions SET version = version + 1, session = session::text::jsonb, in_flight = in_flight::text::jsonb, updated_at = now(), change_seq = nextval('agent_payments_change_seq'), changed_at = clock_timestamp() WHERE id = 'bench-' || :n RETURNING id, version, change_seq) SELECT pg_notify('agent_payments_pgbench', id || ' ' || version || ' ' || change_seq) FROM changed;
            SELECT session::text, changed_at FROM pgbench_sessions WHERE id = ANY(ARRAY['bench-' || :n]);

            """,
            """
            \\set n random(0, \(share - 1))
            WITH changed AS (UPDATE pgbench_sessions AS s SET version = s.version + 1, session = s.session::text::jsonb, in_flight = s.in_flight::text::jsonb, updated_at = now(), change_seq = nextval('agent_payments_change_seq'), changed_at = clock_timestamp() FROM (SELECT 'bench-' || (:client_id * \(share) + (:n + i) % \(share)) AS id FROM generate_series(0, \(rows - 1)) AS i ORDER BY 1) AS v WHERE s.id = v.id RETURNING s.id, s.version, s.change_seq) SELECT id, pg_notify('agent_payments_pgbench', id || ' ' || version || ' ' || change_seq)::text FROM changed;
            SELECT session::text, changed_at FROM pgbench_sessions WHERE id = ANY(ARRAY(SELECT 'bench-' || (:client_id * \(share) + (:n + i) % \(share)) FROM generate_series(0, \(rows - 1)) AS i));

            """,
        ]
        // A copy of the sessions (rows, indexes, the same JSON), so that pgbench's writes never
        // touch a session the stores hold.
        _ = await must("copying the sessions for pgbench") {
            try await replicaA.client.query("DROP TABLE IF EXISTS pgbench_sessions")
            try await replicaA.client.query(
                "CREATE TABLE pgbench_sessions (LIKE agent_payments_sessions INCLUDING ALL)")
            try await replicaA.client.query(
                "INSERT INTO pgbench_sessions SELECT * FROM agent_payments_sessions WHERE id LIKE 'bench-%'")
            return try await replicaA.client.query("ANALYZE pgbench_sessions")
        }
        let pgbenchPath = requireExecutableOrExplain(
            pgbenchExecutable(), install: "apt-get install postgresql (Benchmarks/run installs it)")
        /// pgbench's transactions per second and average latency (ms) for `script`.
        func pgbench(_ script: String, clients: Int, transactions: Int) async -> (tps: Double, latency: Double) {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("postgres-bench-\(getpid()).sql")
            must("writing the pgbench script") { try script.write(to: path, atomically: true, encoding: .utf8) }
            defer { try? FileManager.default.removeItem(at: path) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: pgbenchPath)
            process.arguments = [
                // A count per client rather than -T: started from this process, pgbench's -T never ended here.
                "-n", "-M", "prepared", "-c", "\(clients)", "-j", "1", "-t", "\(transactions)", "-f", path.path,
                databaseURL,
            ]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            must("starting pgbench") { try process.run() }
            let text = String(decoding: await outputOnExit(process, output), as: UTF8.self)
            func figure(_ prefix: String) -> Double? {
                guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
                return Double(line.dropFirst(prefix.count).split(separator: " ").first ?? "")
            }
            guard process.terminationStatus == 0, let tps = figure("tps = "), let latency = figure("latency average = ")
            else {
                giveUp("pgbench gave no figure", because: text.replacingOccurrences(of: "\n", with: " "))
            }
            return (tps, latency)
        }
        let alone = await pgbench(scripts[0], clients: connections, transactions: isSmoke ? 20 : 500)
        let together = await pgbench(
            scripts[1], clients: groupClients, transactions: isSmoke ? 20 : 8_000 / groupClients)
        _ = await must("dropping pgbench's copy") { try await replicaA.client.query("DROP TABLE pgbench_sessions") }

        print(
            "PostgreSQL store (PostgreSQL 15 on this machine, loopback; wrk -t1 -c\(connections) for \(seconds) s over \(liveForCallbacks) live sessions; NIO as the executor: \(takenOver))"
        )
        print("| measure | figure | target |")
        print("|---|---|---|")
        print("| signed callbacks per second into PostgreSQL | \(Int(perSecond)) | ≥ 5000 |")
        print(
            "| compare-and-sets per statement under the load (group commit), mean / largest | \(format(perStatement)) / \(group.largest) | |"
        )
        let writesUnderLoad = Double(max(1, group.writes - writesBefore))
        print(
            "| sessions re-read by the change feeds per write under the load: the writing replica / the other (re-reads per statement) | \(format(Double(rereadsAfter.0.sessions - rereadsBefore.0.sessions) / writesUnderLoad)) / \(format(Double(rereadsAfter.1.sessions - rereadsBefore.1.sessions) / writesUnderLoad)) (\(format(Double(rereadsAfter.0.rereads - rereadsBefore.0.rereads) / Double(max(1, statements)))) / \(format(Double(rereadsAfter.1.rereads - rereadsBefore.1.rereads) / Double(max(1, statements))))) | |"
        )
        print(
            "| pgbench, one callback's statements per transaction (the compare-and-set with its notify, the other replica's re-read), prepared, \(connections) clients, after the load | \(Int(alone.tps)) tps, latency average \(format(alone.latency)) ms | |"
        )
        print(
            "| callbacks ÷ pgbench, one callback per transaction | \(Int((perSecond / alone.tps * 100).rounded())) % | ≥ 80 % when the database is the limit |"
        )
        print(
            "| pgbench, the server's grouped statements: \(rows) compare-and-sets with their notifies and their re-read per transaction, \(groupClients) clients | \(Int(together.tps)) tps = \(Int(together.tps * Double(rows))) writes/s, latency average \(format(together.latency)) ms | |"
        )
        print(
            "| callbacks ÷ pgbench's grouped writes | \(Int((perSecond / (together.tps * Double(rows)) * 100).rounded())) % | |"
        )
        print(
            "| callbacks that read their session by the URL's secret (the snapshot did not hold it) | \(readsBySecret) of \(requests) | |"
        )
        print("| callback latency p50 | \(String(format: "%.3f", Double(p50) / 1000)) ms | |")
        print("| callback latency p99 | \(String(format: "%.3f", Double(p99) / 1000)) ms | |")
        print(
            "| errors / non-2xx / stored writes of \(requests) | \(errors) / \(statusErrors) / \(writes) | 0 / 0 / all |"
        )
        print("| cross-replica notification p50, at rest | \(format(percentile(idle, 0.5))) ms | |")
        print("| cross-replica notification p99, at rest | \(format(percentile(idle, 0.99))) ms | ≤ 20 ms |")
        print(
            "| cross-replica notification p50, under the callback load | \(format(percentile(underLoad, 0.5))) ms | |")
        print(
            "| cross-replica notification p99, under the callback load | \(format(percentile(underLoad, 0.99))) ms | ≤ 20 ms |"
        )
        produced("callbacks per second", requests > 0 && durationMicros > 0 ? perSecond : .nan)
        produced("pgbench transactions per second", alone.tps)
        produced("pgbench grouped transactions per second", together.tps)
        produced("callback latency p50 and p99", p50 > 0 && p99 > 0 ? Double(p99) : .nan)
        produced("cross-replica latency at rest", idle)
        produced("cross-replica latency under load", underLoad)

        // MARK: 3. Memory of a replica with many live sessions

        if let serverPath {
            _ = await must("emptying the sessions table") {
                try await replicaA.client.query("TRUNCATE agent_payments_sessions")
            }
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = databaseURL
            environment["AGENT_PAYMENTS_LOG_LEVEL"] = "error"
            let replica = Process()
            replica.executableURL = URL(fileURLWithPath: serverPath)
            replica.arguments = ["--simulate", "--http", "127.0.0.1:0"]
            replica.environment = environment
            let errorPipe = Pipe()
            replica.standardError = errorPipe
            replica.standardOutput = FileHandle.nullDevice
            must("starting the replica") { try replica.run() }
            defer { if replica.isRunning { replica.terminate() } }
            // Ready once it announces its endpoint.
            var announced = ""
            let handle = errorPipe.fileHandleForReading
            while !announced.contains("MCP endpoint") {
                let chunk = handle.availableData
                if chunk.isEmpty { giveUp("the replica stopped before it was ready", because: announced) }
                announced += String(decoding: chunk, as: UTF8.self)
            }
            func resident() -> Int {
                let status =
                    (try? String(contentsOfFile: "/proc/\(replica.processIdentifier)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
            }
            try? await Task.sleep(for: .milliseconds(500))
            let before = resident()
            _ = await storeSessions(100_000..<(100_000 + sessionCount), in: replicaB)
            // The replica has heard of them all once its feed went quiet; give it a moment more.
            try? await Task.sleep(for: .seconds(isSmoke ? 1 : 3))
            let after = resident()
            print("| replica RSS at rest | \(format(Double(before) / 1_048_576)) MiB | |")
            print(
                "| replica RSS with \(sessionCount) live sessions (written by another replica) | \(format(Double(after) / 1_048_576)) MiB | |"
            )
            print("| per live session | \(format(Double(after - before) / Double(sessionCount))) bytes | |")
            produced("replica RSS with live sessions", before > 0 && after > 0 ? Double(after) : .nan)

            // What the maintenance sweeps read of these sessions, in each replica: the stranded-start
            // sweep every 5 s and the silent-call sweep every 10 s. Until the eleventh session both
            // read every unfinished session idle for 30 s (`activeSessions(updatedBefore:)`), and the
            // silent one then read each session it had checked once more, by payment SID.
            func sweepMilliseconds(_ read: () async throws(PaymentStoreError) -> Int) async -> (Double, Int) {
                var times: [Double] = []
                var count = 0
                for _ in 0..<(isSmoke ? 2 : 7) {
                    let started = ContinuousClock.now
                    count = await must("reading what a sweep reads") { try await read() }
                    let elapsed = ContinuousClock.now - started
                    times.append(
                        Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1_000)
                }
                return (percentile(times, 0.5), count)
            }
            let store = replicaB.store
            let (everyActive, activeCount) = await sweepMilliseconds { () async throws(PaymentStoreError) in
                try await store.activeSessions(updatedBefore: .distantFuture).count
            }
            let (starting, startingCount) = await sweepMilliseconds { () async throws(PaymentStoreError) in
                try await store.startingSessions(updatedBefore: .distantFuture).count
            }
            let (idleKeys, idleCount) = await sweepMilliseconds { () async throws(PaymentStoreError) in
                try await store.idleSessions(updatedBefore: .distantFuture).count
            }
            let (pointReads, _) = await sweepMilliseconds { () async throws(PaymentStoreError) in
                for n in 100_000..<100_100 { _ = try await store.session(payment(n)) }
                return 100
            }
            let perPointRead = pointReads / 100
            print(
                "| a sweep's read of \(sessionCount) idle live sessions: every unfinished session (both sweeps before) / those still starting (the stranded-start sweep) / the idle ones' keys (the silent-call sweep) | \(format(everyActive)) ms (\(activeCount) sessions) / \(format(starting)) ms (\(startingCount)) / \(format(idleKeys)) ms (\(idleCount)) | |"
            )
            print(
                "| the sweeps' reads per minute in each replica, before / now (12 stranded rounds, 6 silent; before, each silent round also read every checked session again at \(format(perPointRead)) ms each) | \(format(18 * everyActive + 6 * Double(idleCount) * perPointRead)) ms / \(format(12 * starting + 6 * idleKeys)) ms | |"
            )
            produced("sweep reads", [everyActive, starting, idleKeys, perPointRead])
            replica.terminate()
            replica.waitUntilExit()
        }
        // MARK: 4. The store while the server is away, and once it is back

        if let clusterDirectory = textOption("--cluster-dir") {
            func control(_ command: String) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["bash", "scripts/pg-throwaway", command, clusterDirectory]
                process.standardOutput = FileHandle.nullDevice
                must("pg-throwaway \(command)") { try process.run() }
                process.waitUntilExit()
                if process.terminationStatus != 0 {
                    giveUp("pg-throwaway \(command) failed", because: "status \(process.terminationStatus)")
                }
            }
            func milliseconds(_ duration: Duration) -> Double {
                Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
            }
            let clock = ContinuousClock()
            let unknown = payment(999_999)
            _ = await must("a read before the outage") { try await replicaA.store.session(unknown) }
            control("halt")
            var refusals: [Double] = []
            for _ in 0..<(isSmoke ? 2 : 10) {
                let started = clock.now
                do {
                    _ = try await replicaA.store.session(unknown)
                    giveUp("a read succeeded with the server stopped", because: "the store answered from somewhere")
                } catch {
                    refusals.append(milliseconds(clock.now - started))
                }
            }
            control("resume")
            let resumed = clock.now
            var recovery = Double.nan
            while clock.now - resumed < .seconds(60) {
                do {
                    _ = try await replicaA.store.session(unknown)
                    recovery = milliseconds(clock.now - resumed)
                    break
                } catch {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            let bound = milliseconds(configuration.requestTimeout)
            print(
                "| store request refused while the server is stopped, p50 / max of \(refusals.count) | \(format(percentile(refusals, 0.5))) / \(format(refusals.max() ?? .nan)) ms | ≤ \(Int(bound)) ms (requestTimeout) + 100 |"
            )
            print(
                "| first answer once the server is back (pg_ctl start returned) | \(format(recovery)) ms | ≤ 5000 ms |")
            produced("store refusal while the server is stopped", refusals)
            produced("recovery once the server is back", recovery)
        }
        runA.cancel()
        runB.cancel()
        checkFigures()
    }
}
