#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit (`RLIMIT_NOFILE`).
public enum FileDescriptorLimit {
    /// The soft and hard limits now.
    public static func current() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE_VALUE), &limit) == 0 else { return (1024, 1024) }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (on macOS, to at most `OPEN_MAX`, which is what the
    /// kernel accepts) and returns the limits before and after.
    @discardableResult
    public static func raiseSoftLimitToHard() -> (before: Int, after: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE_VALUE), &limit) == 0 else { return (1024, 1024) }
        let before = clamp(limit.rlim_cur)
        #if canImport(Darwin)
        limit.rlim_cur = min(limit.rlim_max, rlim_t(OPEN_MAX))
        #else
        limit.rlim_cur = limit.rlim_max
        #endif
        _ = setrlimit(Int32(RLIMIT_NOFILE_VALUE), &limit)
        return (before, current().soft)
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value)
    }

    #if canImport(Glibc)
    private static let RLIMIT_NOFILE_VALUE = Int(RLIMIT_NOFILE.rawValue)
    #else
    private static let RLIMIT_NOFILE_VALUE = Int(RLIMIT_NOFILE)
    #endif
}
