import Synchronization

/// A token bucket per key (a principal, a source address): `perMinute` requests a minute on
/// average, with bursts up to `burst`. Keys whose buckets have refilled are forgotten when the
/// table grows, so a flood of addresses cannot grow it without bound.
final class RateLimiter: Sendable {
    let perMinute: Int
    let burst: Double
    private let maximumKeys: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    private struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    /// `perMinute` of zero or less disables the limit.
    init(perMinute: Int, burst: Int? = nil, maximumKeys: Int = 10_000) {
        self.perMinute = perMinute
        self.burst = Double(max(1, burst ?? max(1, perMinute / 6)))
        self.maximumKeys = maximumKeys
    }

    var isEnabled: Bool { perMinute > 0 }

    /// Takes one token from `key`'s bucket: `nil` when there was one, otherwise the whole seconds
    /// until there will be (for `Retry-After`).
    func take(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        guard isEnabled else { return nil }
        let rate = Double(perMinute) / 60
        return buckets.withLock { buckets -> Int? in
            var bucket = buckets[key] ?? Bucket(tokens: burst, last: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.last).seconds * rate)
            bucket.last = now
            guard bucket.tokens >= 1 else {
                buckets[key] = bucket
                return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
            }
            bucket.tokens -= 1
            if buckets[key] == nil, buckets.count >= maximumKeys { prune(&buckets, now: now, rate: rate) }
            buckets[key] = bucket
            return nil
        }
    }

    /// Whether `key`'s bucket is empty now, without taking from it.
    func isExhausted(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        guard isEnabled else { return nil }
        let rate = Double(perMinute) / 60
        return buckets.withLock { buckets -> Int? in
            guard let bucket = buckets[key] else { return nil }
            let tokens = min(burst, bucket.tokens + (now - bucket.last).seconds * rate)
            return tokens >= 1 ? nil : max(1, Int(((1 - tokens) / rate).rounded(.up)))
        }
    }

    private func prune(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant, rate: Double) {
        buckets = buckets.filter { _, bucket in bucket.tokens + (now - bucket.last).seconds * rate < burst }
        // Still full of busy keys: forget the oldest half rather than grow.
        if buckets.count >= maximumKeys {
            let keep = buckets.sorted { $0.value.last > $1.value.last }.prefix(maximumKeys / 2)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
