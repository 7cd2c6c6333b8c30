import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SpawnSupport

/// A child process started with `posix_spawn` on a clean slate: every signal unblocked and at
/// its default disposition (a Swift process blocks and ignores some, and a child inherits
/// both, so it could not be stopped with SIGTERM), standard input a pipe whose writing end only
/// this process holds (the child's lifeline: it reads end-of-file once this process is gone,
/// however it died), standard output discarded, standard error readable here, and no other
/// descriptor of this process (its listener, its connections) open in the child.
struct SupervisedProcess: Sendable {
    let processID: pid_t
    /// Writing end of the child's standard input; closing it tells the child to stop.
    let lifeline: Int32
    /// Reading end of the child's standard error.
    let standardError: Int32

    struct LaunchError: Error, CustomStringConvertible {
        var description: String
    }

    init(executable: String, arguments: [String], environment: [String: String]) throws(LaunchError) {
        var input: [Int32] = [0, 0]
        var errors: [Int32] = [0, 0]
        guard pipe(&input) == 0 else { throw LaunchError(description: "could not create a pipe: errno \(errno)") }
        guard pipe(&errors) == 0 else {
            close(input[0])
            close(input[1])
            throw LaunchError(description: "could not create a pipe: errno \(errno)")
        }
        // The ends this process keeps must not leak into any other child.
        _ = fcntl(input[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(errors[0], F_SETFD, FD_CLOEXEC)

        #if canImport(Darwin)
        var actions: posix_spawn_file_actions_t?
        var attributes: posix_spawnattr_t?
        #else
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        for descriptor in input + errors { posix_spawn_file_actions_addclose(&actions, descriptor) }
        _ = spawn_support_close_from(&actions, 3)

        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        #if canImport(Darwin)
        let closesOthers = POSIX_SPAWN_CLOEXEC_DEFAULT
        #else
        let closesOthers: Int32 = 0 // the file action above
        #endif
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | closesOthers))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(input[0])
        close(errors[1])
        guard status == 0 else {
            close(input[1])
            close(errors[0])
            throw LaunchError(description: "could not start \(executable): \(String(cString: strerror(status)))")
        }
        processID = pid
        lifeline = input[1]
        standardError = errors[0]
    }

    /// The exit status if the child has exited (reaping it): its code, or 128 + the signal.
    func exitStatus() -> Int32? {
        var status: Int32 = 0
        let result = waitpid(processID, &status, WNOHANG)
        if result == processID {
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
        if result < 0 { return errno == ECHILD ? -1 : nil }
        return nil
    }
}
