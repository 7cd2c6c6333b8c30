public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A webhook URL checked against server-side request forgery, with the addresses its host had
/// when it was checked.
///
/// Events go to URLs an operator configured, but a URL (or the DNS behind it) can point back
/// into the network the server runs in: a database's HTTP port, another tenant's service, the
/// cloud metadata endpoint at 169.254.169.254. So before every delivery the URL is checked:
///
/// - `https` only; `http` only to a loopback host written as such (`127.0.0.0/8`, `::1`,
///   `localhost`), which never leaves the machine.
/// - No user name or password in the URL.
/// - An IP literal, or every address the host name resolves to (with `getaddrinfo`, off the
///   cooperative pool, bounded by ``resolutionTimeout``), must be public: private, shared
///   (carrier-grade NAT), link-local, loopback (through a name), multicast, broadcast, reserved
///   and unspecified ranges are refused in IPv4, in IPv6, and in IPv6 forms that carry an IPv4
///   address (`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`), unless the operator
///   allows private networks (`AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE=true`).
///
/// ```swift
/// switch await WebhookTarget.check(endpoint.url, allowPrivateNetworks: settings.allowPrivateNetworks) {
/// case .success(let url): deliver(to: url)
/// case .failure(let reason): logger.error("webhook not sent", metadata: ["reason": "\(reason)"])
/// }
/// ```
///
/// The HTTP client would resolve the name again when it connects; ``WebhookDispatcher``
/// connects to one of ``addresses`` instead (``resolve(_:allowPrivateNetworks:)``), so the
/// address checked is the address reached (no DNS rebinding between the two).
public struct WebhookTarget: Sendable, Equatable {
    /// The URL, as parsed.
    public let url: URL
    /// The addresses the host had when checked, numeric (`203.0.113.7`, `2001:db8::1`): the
    /// literal itself for an IP literal.
    public let addresses: [String]

    /// Whether the URL's host is an IP literal (its one address is the host itself).
    public var isLiteral: Bool {
        guard let host = url.host(percentEncoded: false) else { return false }
        return addresses == [host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))]
    }

    /// The longest a host name's lookup may take before the target is refused.
    public static let resolutionTimeout: Duration = .seconds(5)

    /// `url`, if it may receive webhooks now (see the type's rules); otherwise why not.
    public static func check(_ url: String, allowPrivateNetworks: Bool) async -> Result<URL, WebhookTargetError> {
        await resolve(url, allowPrivateNetworks: allowPrivateNetworks).map(\.url)
    }

    /// `url` with the addresses it was checked at, if it may receive webhooks now.
    public static func resolve(
        _ url: String, allowPrivateNetworks: Bool
    ) async -> Result<WebhookTarget, WebhookTargetError> {
        await resolve(url, allowPrivateNetworks: allowPrivateNetworks, resolver: .system(timeout: resolutionTimeout))
    }

    /// The checks that need no DNS: the URL's syntax, its scheme, no user information, and an
    /// IP literal's range. For a configuration's load; ``check(_:allowPrivateNetworks:)`` still
    /// runs before each delivery.
    public static func checkSyntax(_ url: String, allowPrivateNetworks: Bool) -> Result<URL, WebhookTargetError> {
        let parsed: ParsedTarget
        switch ParsedTarget.parse(url) {
        case .success(let target): parsed = target
        case .failure(let error): return .failure(error)
        }
        if case .literal(let address) = parsed.host, !address.isLoopback, !allowPrivateNetworks,
            let range = address.nonPublicRange
        {
            return .failure(
                .nonPublicAddress(
                    target: parsed.redacted, address: address.description, range: range, throughName: false))
        }
        return .success(parsed.url)
    }

    static func resolve(
        _ url: String, allowPrivateNetworks: Bool, resolver: HostResolver
    ) async -> Result<WebhookTarget, WebhookTargetError> {
        let parsed: ParsedTarget
        switch ParsedTarget.parse(url) {
        case .success(let target): parsed = target
        case .failure(let error): return .failure(error)
        }
        switch parsed.host {
        case .literal(let address):
            // A loopback literal is what the operator typed: allowed whatever the setting.
            if !address.isLoopback, !allowPrivateNetworks, let range = address.nonPublicRange {
                return .failure(
                    .nonPublicAddress(
                        target: parsed.redacted, address: address.description, range: range, throughName: false))
            }
            return .success(WebhookTarget(url: parsed.url, addresses: [address.description]))
        case .localhost(let name):
            let addresses: [IPAddress]
            switch await resolver.resolve(name) {
            case .success(let found): addresses = found
            case .failure(let failure): return .failure(failure.error(host: name))
            }
            // `localhost` is allowed because it stays on this machine; make sure it does.
            if let stray = addresses.first(where: { !$0.isLoopback }) {
                return .failure(.localhostNotLoopback(target: parsed.redacted, address: stray.description))
            }
            return .success(WebhookTarget(url: parsed.url, addresses: addresses.map(\.description)))
        case .name(let name):
            let addresses: [IPAddress]
            switch await resolver.resolve(name) {
            case .success(let found): addresses = found
            case .failure(let failure): return .failure(failure.error(host: name))
            }
            // Any one refused address refuses the target: the client may connect to any of them.
            if !allowPrivateNetworks {
                for address in addresses {
                    if let range = address.nonPublicRange {
                        return .failure(
                            .nonPublicAddress(
                                target: parsed.redacted, address: address.description, range: range, throughName: true))
                    }
                }
            }
            return .success(WebhookTarget(url: parsed.url, addresses: addresses.map(\.description)))
        }
    }
}

/// Why a URL may not receive webhooks: cases to switch on, each with a sentence that says what
/// to change. A URL is shown as `scheme://host[:port]/path` only: its query, fragment and user
/// information, where a token may hide, never appear.
public enum WebhookTargetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not an absolute URL with a host.
    case invalidURL
    /// A scheme other than https, or http to a host that is not a loopback literal or `localhost`.
    case unsupportedScheme(target: String, scheme: String)
    /// A user name or password in the URL.
    case userInformation(target: String)
    /// The host name did not resolve; `reason` is the resolver's.
    case unresolvable(host: String, reason: String)
    /// The lookup took longer than the timeout (``WebhookTarget/resolutionTimeout``).
    case resolutionTimedOut(host: String, seconds: Int)
    /// The host is, or resolves to (`throughName`), an address in a range that is not public.
    case nonPublicAddress(target: String, address: String, range: AddressRange, throughName: Bool)
    /// `localhost` resolves to an address that is not loopback.
    case localhostNotLoopback(target: String, address: String)

    /// The ranges of addresses that are not on the public internet.
    public enum AddressRange: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        /// 127.0.0.0/8 and ::1.
        case loopback
        /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918).
        case `private`
        /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
        case sharedAddressSpace
        /// 169.254.0.0/16 (where cloud metadata services answer) and fe80::/10.
        case linkLocal
        /// fc00::/7 (RFC 4193), and the deprecated site-local fec0::/10.
        case uniqueLocal
        /// 0.0.0.0/8 and ::.
        case unspecified
        /// 224.0.0.0/4 and ff00::/8.
        case multicast
        /// 255.255.255.255.
        case broadcast
        /// 240.0.0.0/4, the IETF and documentation ranges, and the other special-purpose IPv6
        /// prefixes (IPv4-compatible ::/96, discard-only 100::/64, 2001:db8::/32, local NAT64).
        case reserved

        public var description: String {
            switch self {
            case .loopback: return "a loopback address"
            case .private: return "a private-network address (RFC 1918)"
            case .sharedAddressSpace: return "a carrier-grade NAT address (100.64.0.0/10)"
            case .linkLocal: return "a link-local address (where cloud metadata services answer)"
            case .uniqueLocal: return "a unique-local IPv6 address (fc00::/7)"
            case .unspecified: return "an unspecified address"
            case .multicast: return "a multicast address"
            case .broadcast: return "the broadcast address"
            case .reserved: return "a reserved address"
            }
        }
    }

    public var description: String {
        switch self {
        case .invalidURL:
            return "the webhook URL is not an absolute URL with a host, such as https://app.example.com/payment-events"
        case .unsupportedScheme(let target, let scheme):
            return """
                the webhook URL \(target) uses \(scheme); webhooks go over https, or over http only to this machine \
                (127.0.0.1, [::1] or localhost)
                """
        case .userInformation(let target):
            return """
                the webhook URL \(target) carries a user name or password; remove it (the receiver authenticates \
                webhooks by their webhook-signature)
                """
        case .unresolvable(let host, let reason):
            return "the webhook host \(host) cannot be resolved (\(reason)); check the name in the webhook URL"
        case .resolutionTimedOut(let host, let seconds):
            return
                "looking up the webhook host \(host) took longer than \(seconds) s; check the name and this machine's DNS"
        case .nonPublicAddress(let target, let address, let range, let throughName):
            let subject = throughName ? "resolves to \(address), which is" : "is"
            let hint =
                range == .loopback
                ? "write the host as localhost or 127.0.0.1 to deliver to this machine, or set AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE=true"
                : "set AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE=true if this endpoint is meant to be on a private network"
            return "the webhook URL \(target) \(subject) \(range); webhooks go only to public addresses, so \(hint)"
        case .localhostNotLoopback(let target, let address):
            return
                "the webhook URL \(target) names localhost, which resolves to \(address), not a loopback address; check /etc/hosts"
        }
    }
}

/// A URL split as the HTTP client splits it (Foundation's `URL`, brackets trimmed from an IPv6
/// host), so that the check and the connection agree on the host.
struct ParsedTarget {
    enum Host {
        case literal(IPAddress)
        /// `localhost`, as written.
        case localhost(String)
        case name(String)
    }

    var url: URL
    var host: Host
    /// `scheme://host[:port]/path`, for messages.
    var redacted: String

    static func parse(_ text: String) -> Result<ParsedTarget, WebhookTargetError> {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
            let rawHost = url.host, !rawHost.isEmpty
        else { return .failure(.invalidURL) }
        let bare = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let host: Host
        if let address = IPAddress(literal: bare) {
            host = .literal(address)
        } else if bare.lowercased() == "localhost" {
            host = .localhost(bare)
        } else {
            host = .name(bare)
        }
        let shownHost = bare.contains(":") ? "[\(bare)]" : bare
        let redacted = "\(scheme)://\(shownHost)\(url.port.map { ":\($0)" } ?? "")\(url.path(percentEncoded: true))"
        // `@` in the authority at all, even with an empty user name, is refused.
        guard url.user == nil, url.password == nil, !Self.authority(of: text).contains("@") else {
            return .failure(.userInformation(target: redacted))
        }
        switch scheme {
        case "https":
            break
        case "http":
            let loopback: Bool
            switch host {
            case .literal(let address): loopback = address.isLoopback
            case .localhost: loopback = true
            case .name: loopback = false
            }
            guard loopback else { return .failure(.unsupportedScheme(target: redacted, scheme: scheme)) }
        default:
            return .failure(.unsupportedScheme(target: redacted, scheme: scheme))
        }
        return .success(ParsedTarget(url: url, host: host, redacted: redacted))
    }

    /// What lies between `//` and the first `/`, `?` or `#`.
    static func authority(of text: String) -> Substring {
        guard let start = text.range(of: "//") else { return "" }
        let rest = text[start.upperBound...]
        return rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    }
}

/// An IPv4 or IPv6 address as its bytes in network order, classified by range.
struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    let bytes: [UInt8]

    init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16)
        self.bytes = bytes
    }

    /// Strict numeric forms only (`inet_pton`): dotted-quad IPv4 and RFC 4291 IPv6, which is
    /// what the HTTP client itself takes for a literal. Shorthands such as `127.1` or
    /// `2130706433` are names, and are checked by what they resolve to.
    init?(literal: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address an IPv6 one carries for the purpose of routing: IPv4-mapped
    /// (`::ffff:0:0/96`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
    var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return IPAddress(bytes: Array(bytes[12..<16]))
        }
        if bytes[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
            return IPAddress(bytes: Array(bytes[12..<16]))
        }
        if bytes[0] == 0x20 && bytes[1] == 0x02 {
            return IPAddress(bytes: Array(bytes[2..<6]))
        }
        return nil
    }

    /// 127.0.0.0/8, `::1` or `::ffff:127.x.y.z`: this machine. (NAT64 and 6to4 forms of
    /// 127.x are in the loopback range but lead to a gateway, so they are not.)
    var isLoopback: Bool {
        if bytes.count == 4 { return bytes[0] == 127 }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// The non-public range the address is in; nil for a public address.
    var nonPublicRange: WebhookTargetError.AddressRange? {
        if bytes.count == 4 { return Self.range(ofIPv4: bytes) }
        if let embedded = embeddedIPv4 { return embedded.nonPublicRange }
        return Self.range(ofIPv6: bytes)
    }

    private static func range(ofIPv4 b: [UInt8]) -> WebhookTargetError.AddressRange? {
        let value = UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
        func within(_ prefix: UInt32, _ length: UInt32) -> Bool {
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - length)
            return value & mask == prefix & mask
        }
        if value == 0xffff_ffff { return .broadcast }
        if within(0x0000_0000, 8) { return .unspecified } // 0.0.0.0/8, "this network"
        if within(0x7f00_0000, 8) { return .loopback }
        if within(0x0a00_0000, 8) || within(0xac10_0000, 12) || within(0xc0a8_0000, 16) { return .private }
        if within(0x6440_0000, 10) { return .sharedAddressSpace }
        if within(0xa9fe_0000, 16) { return .linkLocal }
        if within(0xe000_0000, 4) { return .multicast }
        if within(0xf000_0000, 4) { return .reserved }
        // IETF protocol assignments, TEST-NET-1/2/3, benchmarking.
        if within(0xc000_0000, 24) || within(0xc000_0200, 24) || within(0xc633_6400, 24) || within(0xcb00_7100, 24)
            || within(0xc612_0000, 15)
        {
            return .reserved
        }
        return nil
    }

    private static func range(ofIPv6 b: [UInt8]) -> WebhookTargetError.AddressRange? {
        if b[0..<15].allSatisfy({ $0 == 0 }) {
            return b[15] == 1 ? .loopback : b[15] == 0 ? .unspecified : .reserved
        }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return .reserved } // IPv4-compatible ::/96, deprecated
        if b[0] == 0xff { return .multicast }
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return .linkLocal } // fe80::/10
        if b[0] == 0xfe && b[1] & 0xc0 == 0xc0 { return .uniqueLocal } // fec0::/10, site-local, deprecated
        if b[0] & 0xfe == 0xfc { return .uniqueLocal } // fc00::/7
        if b[0..<8] == [0x01, 0x00, 0, 0, 0, 0, 0, 0] { return .reserved } // 100::/64, discard-only
        if b[0..<4] == [0x20, 0x01, 0x0d, 0xb8] { return .reserved } // 2001:db8::/32, documentation
        if b[0..<6] == [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01] { return .reserved } // 64:ff9b:1::/48, local NAT64
        if b[0] & 0xe0 != 0x20 { return .reserved } // outside 2000::/3, the only global unicast space
        return nil
    }
}

/// Looks host names up. The system one calls `getaddrinfo` on a thread of its own, bounded in
/// time; tests substitute answers.
struct HostResolver: Sendable {
    enum Failure: Error, Equatable {
        case notFound(String)
        case timedOut(seconds: Int)
        case cancelled

        func error(host: String) -> WebhookTargetError {
            switch self {
            case .notFound(let reason): return .unresolvable(host: host, reason: reason)
            case .timedOut(let seconds): return .resolutionTimedOut(host: host, seconds: seconds)
            case .cancelled: return .unresolvable(host: host, reason: "the lookup was cancelled")
            }
        }
    }

    let resolve: @Sendable (String) async -> Result<[IPAddress], Failure>

    /// `getaddrinfo` for TCP with any address family, as the HTTP client asks; no
    /// `AI_ADDRCONFIG`, so every address the client might be given is seen.
    static func system(timeout: Duration) -> HostResolver {
        HostResolver { host in
            await LookupThreads.run(timeout: timeout) { Self.lookUp(host) }
        }
    }

    /// Lookups still running on their threads; past this many, a new one is refused rather than
    /// adding a thread (a resolver that hangs would otherwise pile them up).
    static let maximumPendingLookups = 32

    static func lookUp(_ host: String) -> Result<[IPAddress], Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let first = list else {
            let reason = String(cString: gai_strerror(status)).lowercased()
            return .failure(.notFound(reason))
        }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let socketAddress = entry.pointee.ai_addr {
                switch entry.pointee.ai_family {
                case AF_INET:
                    let address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        $0.pointee.sin_addr
                    }
                    addresses.append(IPAddress(bytes: withUnsafeBytes(of: address) { Array($0) }))
                case AF_INET6:
                    let address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        $0.pointee.sin6_addr
                    }
                    addresses.append(IPAddress(bytes: withUnsafeBytes(of: address) { Array($0) }))
                default:
                    break
                }
            }
            cursor = entry.pointee.ai_next
        }
        var seen: Set<IPAddress> = []
        addresses = addresses.filter { seen.insert($0).inserted }
        return addresses.isEmpty ? .failure(.notFound("no IPv4 or IPv6 address")) : .success(addresses)
    }
}

/// Runs blocking lookups on threads of their own, so a slow resolver holds up no task of the
/// cooperative pool, and answers after `timeout` whether or not the lookup has.
enum LookupThreads {
    private static let pending = Mutex(0)

    static func run(
        timeout: Duration, _ lookup: @escaping @Sendable () -> Result<[IPAddress], HostResolver.Failure>
    ) async
        -> Result<[IPAddress], HostResolver.Failure>
    {
        let seconds = Int(timeout.components.seconds)
        let admitted = pending.withLock { count in
            guard count < HostResolver.maximumPendingLookups else { return false }
            count += 1
            return true
        }
        guard admitted else { return .failure(.notFound("too many earlier lookups are still unanswered")) }
        let answer = OneAnswer<Result<[IPAddress], HostResolver.Failure>>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                answer.hold(continuation)
                Thread.detachNewThread {
                    let result = lookup()
                    pending.withLock { $0 -= 1 }
                    answer.give(result)
                }
                let milliseconds = Int(min(max(timeout / .milliseconds(1), 0), 3_600_000))
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) {
                    answer.give(.failure(.timedOut(seconds: seconds)))
                }
            }
        } onCancel: {
            answer.give(.failure(.cancelled))
        }
    }
}

/// A continuation resumed by whichever answer comes first; later ones are dropped.
final class OneAnswer<Value: Sendable>: Sendable {
    private enum State {
        case waiting
        case awaiting(CheckedContinuation<Value, Never>)
        case answered(Value)
        case done
    }

    private let state = Mutex(State.waiting)

    /// Resumes `continuation` with the first answer, given before or after.
    func hold(_ continuation: CheckedContinuation<Value, Never>) {
        let early: Value? = state.withLock { state in
            switch state {
            case .waiting:
                state = .awaiting(continuation)
                return nil
            case .answered(let value):
                state = .done
                return value
            case .awaiting, .done:
                preconditionFailure("held twice")
            }
        }
        if let early { continuation.resume(returning: early) }
    }

    /// The answer, if it is the first.
    func give(_ value: Value) {
        let waiting: CheckedContinuation<Value, Never>? = state.withLock { state in
            switch state {
            case .waiting:
                state = .answered(value)
                return nil
            case .awaiting(let continuation):
                state = .done
                return continuation
            case .answered, .done:
                return nil
            }
        }
        waiting?.resume(returning: value)
    }
}
