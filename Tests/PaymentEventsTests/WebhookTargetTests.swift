import Dispatch
import Foundation
import Testing
@testable import PaymentEvents

@Suite struct WebhookTargetTests {
    typealias Range = WebhookTargetError.AddressRange

    /// A resolver with fixed answers; a name it does not know fails the test.
    static func resolver(_ answers: [String: Result<[String], HostResolver.Failure>] = [:]) -> HostResolver {
        HostResolver { host in
            guard let answer = answers[host] else {
                Issue.record("unexpected lookup of \(host)")
                return .failure(.notFound("unexpected"))
            }
            return answer.map { $0.map { IPAddress(literal: $0)! } }
        }
    }

    static func check(
        _ url: String, allowPrivate: Bool = false, _ answers: [String: Result<[String], HostResolver.Failure>] = [:]
    ) async
        -> Result<WebhookTarget, WebhookTargetError>
    {
        await WebhookTarget.resolve(url, allowPrivateNetworks: allowPrivate, resolver: resolver(answers))
    }

    // MARK: IP literals, checked without DNS

    @Test(arguments: [
        ("10.0.0.1", Range.private), ("10.255.255.255", .private), ("172.16.0.1", .private),
        ("172.31.255.255", .private),
        ("192.168.1.1", .private), ("100.64.0.1", .sharedAddressSpace), ("100.127.255.255", .sharedAddressSpace),
        ("169.254.169.254", .linkLocal), ("169.254.0.1", .linkLocal), ("0.0.0.0", .unspecified),
        ("0.1.2.3", .unspecified),
        ("224.0.0.1", .multicast), ("239.255.255.250", .multicast), ("255.255.255.255", .broadcast),
        ("240.0.0.1", .reserved),
        ("192.0.2.1", .reserved), ("198.18.0.1", .reserved), ("192.0.0.8", .reserved),
        ("[::]", .unspecified), ("[fc00::1]", .uniqueLocal), ("[fd12:3456:789a::1]", .uniqueLocal),
        ("[fec0::1]", .uniqueLocal),
        ("[fe80::1]", .linkLocal), ("[febf:ffff::1]", .linkLocal), ("[ff02::1]", .multicast), ("[ff0e::1]", .multicast),
        ("[::ffff:10.0.0.1]", .private), ("[::ffff:a9fe:a9fe]", .linkLocal),
        ("[::ffff:100.64.0.1]", .sharedAddressSpace),
        ("[::ffff:0.0.0.0]", .unspecified), ("[::ffff:255.255.255.255]", .broadcast),
        ("[64:ff9b::a9fe:a9fe]", .linkLocal), ("[64:ff9b::10.0.0.1]", .private), ("[64:ff9b::127.0.0.1]", .loopback),
        ("[2002:c0a8:101::1]", .private), ("[2002:7f00:1::1]", .loopback), ("[::10.0.0.1]", .reserved),
        ("[::2]", .reserved),
        ("[2001:db8::1]", .reserved), ("[100::1]", .reserved), ("[64:ff9b:1::1]", .reserved), ("[4000::1]", .reserved),
    ])
    func refusesNonPublicLiterals(host: String, range: Range) async throws {
        let url = "https://\(host):8443/events"
        let result = await Self.check(url)
        guard case .failure(.nonPublicAddress(let target, _, let found, let throughName)) = result else {
            Issue.record("\(host) gave \(result)")
            return
        }
        #expect(found == range)
        #expect(!throughName)
        #expect(target == "https://\(host):8443/events")
        // The operator's opt-in lets them through; the static check at load agrees with both.
        #expect(try await Self.check(url, allowPrivate: true).get().url.absoluteString == url)
        #expect(WebhookTarget.checkSyntax(url, allowPrivateNetworks: false) == result.map(\.url))
        #expect(try WebhookTarget.checkSyntax(url, allowPrivateNetworks: true).get().absoluteString == url)
    }

    @Test(arguments: [
        "8.8.8.8", "1.1.1.1", "11.0.0.1", "9.255.255.255", "172.15.255.255", "172.32.0.1", "192.167.255.255",
        "192.169.0.1",
        "100.63.255.255", "100.128.0.1", "169.253.255.255", "169.255.0.1", "223.255.255.255", "126.255.255.255",
        "128.0.0.1",
        "[2606:4700:4700::1111]", "[2001:4860:4860::8888]", "[::ffff:8.8.8.8]", "[64:ff9b::808:808]",
        "[2002:808:808::1]",
    ])
    func acceptsPublicLiterals(host: String) async throws {
        let target = try await Self.check("https://\(host)/events").get()
        #expect(target.url.absoluteString == "https://\(host)/events")
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        #expect(target.addresses == [IPAddress(literal: bare)!.description])
    }

    @Test(arguments: [
        "http://127.0.0.1:8080/events", "http://127.255.255.254/", "http://[::1]:9000/x", "https://127.0.0.1/",
        "https://[::1]/", "http://[::ffff:127.0.0.1]/", "HTTP://127.0.0.1/upper",
    ])
    func allowsLoopbackLiteralsOverHTTPWhateverTheSetting(url: String) async throws {
        #expect(try await Self.check(url, allowPrivate: false).get().url.absoluteString == url)
        #expect(try await Self.check(url, allowPrivate: true).get().url.absoluteString == url)
        #expect(try WebhookTarget.checkSyntax(url, allowPrivateNetworks: false).get().absoluteString == url)
    }

    // MARK: Schemes, user information, syntax

    @Test(arguments: [
        ("http://example.com/events", false), ("http://example.com/events", true), ("http://10.0.0.1/events", true),
        ("http://8.8.8.8/", false), ("http://[fd00::1]/", true), ("http://127.0.0.1.nip.io/", true),
        ("http://2130706433/", true),
        ("ftp://example.com/events", false), ("ws://127.0.0.1/", false), ("wss://example.com/", true),
        ("gopher://127.0.0.1:70/", true),
        ("file://localhost/etc/passwd", true), ("http://[64:ff9b::7f00:1]/", true), ("http://[2002:7f00:1::1]/", true),
    ])
    func refusesSchemesOtherThanHTTPSAndLoopbackHTTP(url: String, allowPrivate: Bool) async {
        // No lookup happens: the resolver knows no name.
        let result = await Self.check(url, allowPrivate: allowPrivate)
        guard case .failure(.unsupportedScheme(_, let scheme)) = result else {
            Issue.record("\(url) gave \(result)")
            return
        }
        #expect(url.lowercased().hasPrefix(scheme + "://"))
        #expect("\(WebhookTargetError.unsupportedScheme(target: "t", scheme: scheme))".contains("https"))
    }

    @Test(arguments: [
        "https://zed:hunter2@example.com/events", "https://zed@example.com/", "https://@example.com/",
        "http://tok3n@127.0.0.1/",
        "https://zed:@[::1]/", "http://q7:x9@localhost/",
    ])
    func refusesUserInformation(url: String) async {
        let result = await Self.check(url, allowPrivate: true)
        guard case .failure(.userInformation(let target)) = result else {
            Issue.record("\(url) gave \(result)")
            return
        }
        #expect(!target.contains("@"))
        let userInformation = ParsedTarget.authority(of: url).prefix { $0 != "@" }
        for part in userInformation.split(separator: ":") {
            #expect(!"\(WebhookTargetError.userInformation(target: target))".contains(part))
        }
    }

    @Test(arguments: [
        "", "not a url", "https://", "https:///events", "/relative/path", "example.com/events",
        "mailto:ops@example.com",
    ])
    func refusesWhatIsNotAnAbsoluteURLWithAHost(url: String) async {
        #expect(await Self.check(url) == .failure(.invalidURL))
        #expect(WebhookTarget.checkSyntax(url, allowPrivateNetworks: true) == .failure(.invalidURL))
    }

    // MARK: Names, checked by what they resolve to

    @Test func acceptsANameThatResolvesOnlyToPublicAddresses() async throws {
        let target = try await Self.check(
            "https://hooks.example.com/payments?k=1",
            ["hooks.example.com": .success(["93.184.216.34", "2606:2800:220:1::"])]
        ).get()
        #expect(target.url.absoluteString == "https://hooks.example.com/payments?k=1")
        #expect(target.addresses == ["93.184.216.34", "2606:2800:220:1::"])
    }

    @Test(arguments: [
        (["93.184.216.34", "10.0.0.5"], "10.0.0.5", Range.private),
        (["169.254.169.254"], "169.254.169.254", .linkLocal),
        (["2606:2800:220:1::", "fd00::5"], "fd00::5", .uniqueLocal),
        (["::ffff:169.254.169.254"], "::ffff:169.254.169.254", .linkLocal),
        (["64:ff9b::a00:5"], "64:ff9b::a00:5", .private),
        (["127.0.0.1"], "127.0.0.1", .loopback),
        (["::1"], "::1", .loopback),
        (["100.100.100.200"], "100.100.100.200", .sharedAddressSpace),
    ])
    func refusesANameWhenAnyAddressIsNotPublic(addresses: [String], refused: String, range: Range) async throws {
        let url = "https://hooks.example.com/payments"
        let answers: [String: Result<[String], HostResolver.Failure>] = ["hooks.example.com": .success(addresses)]
        #expect(
            await Self.check(url, answers)
                == .failure(.nonPublicAddress(target: url, address: refused, range: range, throughName: true)))
        // Only the operator's opt-in lets it through; a name never counts as typed loopback.
        #expect(try await Self.check(url, allowPrivate: true, answers).get().addresses == addresses)
        // The static check cannot know, and leaves it to delivery.
        #expect(try WebhookTarget.checkSyntax(url, allowPrivateNetworks: false).get().absoluteString == url)
    }

    @Test func allowsLocalhostOverHTTPWhenItIsLoopback() async throws {
        let answers: [String: Result<[String], HostResolver.Failure>] = ["localhost": .success(["127.0.0.1", "::1"])]
        #expect(try await Self.check("http://localhost:3000/events", answers).get().addresses == ["127.0.0.1", "::1"])
        #expect(try await Self.check("https://localhost/events", answers).get().addresses == ["127.0.0.1", "::1"])
        #expect(
            try await Self.check("http://LocalHost/", ["LocalHost": .success(["127.0.0.1"])]).get().addresses == [
                "127.0.0.1"
            ])
        #expect(
            await Self.check(
                "http://localhost/events", allowPrivate: true, ["localhost": .success(["127.0.0.1", "10.1.1.1"])])
                == .failure(.localhostNotLoopback(target: "http://localhost/events", address: "10.1.1.1")))
    }

    @Test func reportsLookupFailuresWithTheHost() async {
        #expect(
            await Self.check(
                "https://gone.example.com/", ["gone.example.com": .failure(.notFound("name or service not known"))])
                == .failure(.unresolvable(host: "gone.example.com", reason: "name or service not known")))
        #expect(
            await Self.check("https://slow.example.com/", ["slow.example.com": .failure(.timedOut(seconds: 5))])
                == .failure(.resolutionTimedOut(host: "slow.example.com", seconds: 5)))
        #expect(
            await Self.check("http://localhost/", ["localhost": .failure(.timedOut(seconds: 5))])
                == .failure(.resolutionTimedOut(host: "localhost", seconds: 5)))
    }

    // MARK: The system resolver

    @Test func theSystemResolverAllowsLocalhost() async throws {
        let url = try await WebhookTarget.check("http://localhost:8080/events", allowPrivateNetworks: false).get()
        #expect(url.host == "localhost")
        #expect(url.port == 8080)
    }

    @Test func theSystemResolverRefusesANameThatDoesNotResolve() async {
        let result = await WebhookTarget.check("https://nonexistent.invalid/events", allowPrivateNetworks: true)
        switch result {
        case .failure(.unresolvable(let host, let reason)):
            #expect(host == "nonexistent.invalid")
            #expect(!reason.isEmpty)
            #expect(
                WebhookTargetError.unresolvable(host: host, reason: reason).description.contains(
                    "nonexistent.invalid cannot be resolved"))
        case .failure(.resolutionTimedOut(let host, _)):
            // A machine whose DNS does not answer at all.
            #expect(host == "nonexistent.invalid")
        default:
            Issue.record("nonexistent.invalid gave \(result)")
        }
    }

    /// `getaddrinfo` reads these shorthands as 127.0.0.1, as an HTTP client's lookup would: so
    /// they are names (not literals) that resolve to loopback, and refused as such.
    @Test(arguments: ["2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1"])
    func theSystemResolverSeesThroughNumericShorthands(host: String) async {
        let result = await WebhookTarget.check("https://\(host)/events", allowPrivateNetworks: false)
        #expect(
            result
                == .failure(
                    .nonPublicAddress(
                        target: "https://\(host)/events", address: "127.0.0.1", range: .loopback, throughName: true)))
        #expect(
            await WebhookTarget.check("http://\(host)/events", allowPrivateNetworks: true)
                == .failure(.unsupportedScheme(target: "http://\(host)/events", scheme: "http")))
    }

    @Test func aLookupThatDoesNotAnswerTimesOutAndLeavesItsThreadBehind() async {
        let release = DispatchSemaphore(value: 0)
        let result = await LookupThreads.run(timeout: .milliseconds(20)) {
            release.wait()
            return .success([IPAddress(literal: "8.8.8.8")!])
        }
        #expect(result == .failure(.timedOut(seconds: 0)))
        release.signal()
    }

    @Test func theFirstAnswerWinsWhetherItCameBeforeOrAfterTheWait() async {
        let early = OneAnswer<Int>()
        early.give(1)
        early.give(2)
        #expect(await withCheckedContinuation { early.hold($0) } == 1)
        let late = OneAnswer<Int>()
        async let value = withCheckedContinuation { late.hold($0) }
        late.give(3)
        late.give(4)
        #expect(await value == 3)
    }

    // MARK: What the errors say

    @Test func errorsShowTheURLWithoutQueryFragmentOrUserInformation() async {
        let secretish = "https://10.0.0.1:8443/hooks/in?token=s3cr3t#frag"
        let refused = await Self.check(secretish)
        guard case .failure(let error) = refused else {
            Issue.record("\(refused)")
            return
        }
        #expect(error.description.contains("https://10.0.0.1:8443/hooks/in"))
        #expect(error.description.contains("AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE=true"))
        #expect(!error.description.contains("s3cr3t"))
        #expect(!error.description.contains("frag"))
        for url in [
            "https://alice:hunter2@example.com/x?k=v", "http://example.com/x?token=abc123", "ftp://bob:pw@example.com/",
        ] {
            guard case .failure(let error) = await Self.check(url) else {
                Issue.record("\(url) was accepted")
                continue
            }
            for part in ["hunter2", "alice", "abc123", "bob", "pw@"] {
                #expect(!error.description.contains(part), "\(error)")
            }
        }
    }

    @Test func loopbackThroughANameSaysHowToAllowIt() {
        let error = WebhookTargetError.nonPublicAddress(
            target: "https://me.example/x", address: "127.0.0.1", range: .loopback, throughName: true)
        #expect(error.description.contains("resolves to 127.0.0.1"))
        #expect(error.description.contains("localhost or 127.0.0.1"))
        #expect(error.description.contains("AGENT_PAYMENTS_WEBHOOK_ALLOW_PRIVATE=true"))
        let metadata = WebhookTargetError.nonPublicAddress(
            target: "https://169.254.169.254/", address: "169.254.169.254", range: .linkLocal,
            throughName: false)
        #expect(metadata.description.contains("is a link-local address"))
    }

    @Test func describesAddressesCanonically() {
        #expect(IPAddress(literal: "0:0:0:0:0:0:0:1")?.description == "::1")
        #expect(IPAddress(literal: "::FFFF:10.0.0.1")?.description == "::ffff:10.0.0.1")
        #expect(IPAddress(literal: "010.0.0.1") == nil)
        #expect(IPAddress(literal: "127.1") == nil)
        #expect(IPAddress(literal: "example.com") == nil)
        #expect(IPAddress(literal: "fe80::1%eth0") == nil)
    }
}
