import Foundation
import HTTPTestSupport
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PaymentStorePostgres
import Synchronization
import Testing
import SpawnSupport

/// A PostgreSQL server of the tests' own (`scripts/pg-throwaway`): a temporary folder, a free
/// loopback port, a random password; removed when the test process ends. One is shared by the
/// suites (each test gets a fresh database in it); a test that stops the server starts its own.
///
/// Where PostgreSQL cannot start, the tests fail with the reason when
/// `AGENT_PAYMENTS_REQUIRE_POSTGRES=1` (as `scripts/test`, and so CI, sets it), and otherwise are
/// reported as skipped, with the reason, by the test framework (``Trait/postgreSQL``): never a
/// pass without running.
final class ThrowawayCluster: Sendable {
    let directory: String
    /// `postgres://agent_payments:…@127.0.0.1:PORT/postgres?sslmode=disable`
    let url: String

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/pg-throwaway").path

    static var required: Bool { ProcessInfo.processInfo.environment["AGENT_PAYMENTS_REQUIRE_POSTGRES"] == "1" }

    private init(directory: String, url: String) {
        self.directory = directory
        self.url = url
    }

    /// A new cluster, or the reason there is none.
    static func start() async -> Result<ThrowawayCluster, Unavailable> {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "agent-payments-pg-\(UUID().uuidString.prefix(8))"
        ).path
        let result = await run(script, ["start", directory])
        guard result.status == 0, let url = result.output.split(separator: "\n").last.map(String.init),
            url.hasPrefix("postgres://")
        else {
            return .failure(
                Unavailable(reason: "scripts/pg-throwaway start failed (status \(result.status)): \(result.errors)"))
        }
        let cluster = ThrowawayCluster(directory: directory, url: url)
        Leftovers.remember(directory)
        return .success(cluster)
    }

    /// The shared cluster, started on first use.
    static let shared = Task<Result<ThrowawayCluster, Unavailable>, Never> { await start() }

    /// Runs `body` with the URL of a fresh, empty database in the shared cluster; dropped after.
    /// Without PostgreSQL: fails when required, else prints why and returns.
    static func withDatabase(_ body: (String) async throws -> Void) async throws {
        let cluster: ThrowawayCluster
        switch await shared.value {
        case .success(let running): cluster = running
        case .failure(let unavailable):
            unavailable.report()
            return
        }
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await cluster.psql("CREATE DATABASE \(name)")
        do {
            try await body(cluster.url.replacingOccurrences(of: "/postgres?", with: "/\(name)?"))
        } catch {
            _ = try? await cluster.psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            throw error
        }
        try await cluster.psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one SQL statement with psql against `database` (the cluster's `postgres` by default);
    /// its output, one row per line, columns separated by `|`.
    @discardableResult
    func psql(_ sql: String, database url: String? = nil) async throws -> String {
        let result = await Self.run("/usr/bin/psql", [url ?? self.url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        guard result.status == 0 else { throw Unavailable(reason: "psql failed: \(result.errors)") }
        return result.output
    }

    /// Stops the server (fast shutdown), keeping its data.
    func halt() async throws { try await control("halt") }
    /// Starts it again on the same port.
    func resume() async throws { try await control("resume") }
    /// Stops it and removes its folder.
    func stop() async throws { try await control("stop") }

    private func control(_ command: String) async throws {
        let result = await Self.run(Self.script, [command, directory])
        guard result.status == 0 else { throw Unavailable(reason: "pg-throwaway \(command) failed: \(result.errors)") }
    }

    /// Why there is no PostgreSQL.
    struct Unavailable: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }

        /// A test that needs PostgreSQL reached a cluster that could not start: a failure (the
        /// suite's ``Trait/postgreSQL`` skipped it beforehand unless PostgreSQL is required).
        func report() {
            Issue.record("PostgreSQL could not start: \(reason)")
        }
    }

    /// Runs a program to its end without blocking a thread of the cooperative pool or of
    /// Dispatch's (``onOwnThread(_:)``): spawned with posix_spawn, its output read and its exit
    /// awaited on threads of their own. (Not Foundation's Process: in this test process its
    /// children were left unreaped, their exit never reported.)
    static func run(
        _ executable: String, _ arguments: [String]
    ) async -> (status: Int32, output: String, errors: String) {
        await onOwnThread { spawnAndWait(executable, arguments) }
    }

    private static let spawnLock = Mutex(())

    private static func spawnAndWait(
        _ executable: String, _ arguments: [String]
    ) -> (status: Int32, output: String, errors: String) {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        // Close-on-exec: another program spawned meanwhile (a server that daemonizes) must not
        // inherit these, or their reader never sees the end; the copies made for the child keep
        // theirs open. (The lock keeps this file's own spawns out of the gap before fcntl.)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let spawned: Int32 = spawnLock.withLock { _ in
            guard pipe(&outPipe) == 0 else { return errno }
            guard pipe(&errPipe) == 0 else {
                close(outPipe[0])
                close(outPipe[1])
                return errno
            }
            for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
            // Nothing else of this process in the child: a server's sockets inherited by psql,
            // say, kept a backend half-connected (in authentication, for 60 s) while that psql's
            // DROP DATABASE waited for every backend to take its barrier.
            _ = spawn_support_close_from(&actions, 3)
            let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
            close(outPipe[1])
            close(errPipe[1])
            return result
        }
        guard spawned == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            return (-1, "", "\(executable) could not start: \(String(cString: strerror(spawned)))")
        }
        let errors = Mutex(Data())
        let errorEnd = errPipe[0]
        let group = DispatchGroup()
        group.enter()
        Thread {
            let data = FileHandle(fileDescriptor: errorEnd, closeOnDealloc: true).readDataToEndOfFile()
            errors.withLock { $0 = data }
            group.leave()
        }.start()
        let output = FileHandle(fileDescriptor: outPipe[0], closeOnDealloc: true).readDataToEndOfFile()
        group.wait()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
        return (code, String(decoding: output, as: UTF8.self), String(decoding: errors.withLock { $0 }, as: UTF8.self))
    }
}

/// Clusters to remove when the test process exits.
enum Leftovers {
    private static let directories = Mutex<[String]>([])
    private static let installed = Mutex(false)

    static func remember(_ directory: String) {
        directories.withLock { $0.append(directory) }
        let first = installed.withLock { installed in
            defer { installed = true }
            return !installed
        }
        if first {
            // At exit Foundation's Process no longer works (its helper thread is gone): the C library's system() does.
            atexit {
                for directory in Leftovers.directories.withLock({ $0 }) {
                    _ = system("'\(ThrowawayCluster.script)' stop '\(directory)' >/dev/null 2>&1")
                }
            }
        }
    }
}

/// A running ``PostgresPaymentDatabase`` on `url` for the duration of `body`: pool and feed
/// running, migrated, the feed listening.
func withRunningDatabase<T: Sendable>(
    _ url: String, label: String = "test",
    _ body: (PostgresPaymentDatabase) async throws -> T
) async throws -> T {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    let database = PostgresPaymentDatabase(configuration: try PostgresDatabaseConfiguration(url: url), logger: logger)
    let task = Task { await database.run() }
    defer { task.cancel() }
    _ = try await database.prepare(waitingUpTo: .seconds(20))
    let result = try await body(database)
    task.cancel()
    await task.value
    return result
}

extension Trait where Self == ConditionTrait {
    /// For suites that need PostgreSQL: they run where the shared throwaway cluster starts, and
    /// are reported as skipped, saying why, where it cannot. With
    /// `AGENT_PAYMENTS_REQUIRE_POSTGRES=1` they always run, so a cluster that cannot start fails
    /// them with its reason.
    static var postgreSQL: Self {
        .enabled(
            "PostgreSQL (scripts/pg-throwaway) could not start here; AGENT_PAYMENTS_REQUIRE_POSTGRES=1 makes that a failure"
        ) {
            if ThrowawayCluster.required { return true }
            if case .success = await ThrowawayCluster.shared.value { return true }
            return false
        }
    }
}
