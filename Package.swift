// swift-tools-version:6.1
import PackageDescription
#if canImport(Glibc)
import Glibc
#else
// Elsewhere (macOS) the executables are linked the ordinary way: nothing to ask the C library.
#endif

/// agent-payments: take a card or bank payment on a live Twilio call, driven by an AI agent
/// over the Model Context Protocol, without the agent ever seeing the card.
///
/// Module map, import rules and what each target is for: Docs/architecture.md. The benchmarks
/// (Benchmarks/Package.swift) and the fuzz targets (Fuzz/Package.swift) are packages of their
/// own that depend on this one by path.

/// Metadata of concrete generic types made by direct calls to their accessors instead of from
/// their mangled names (`-disable-concrete-type-metadata-mangled-name-accessors`). From a mangled
/// name the runtime checks each generic requirement (`String: Hashable` for a dictionary's
/// storage, say) by a conformance lookup, and a lookup that misses its cache scans every
/// conformance record of the image, 13,426 here: a dozen such scans before the first answer were
/// about 0.7 ms of a 5 ms cold start (perf record of 60 spawns; Docs/benchmarks.md). A direct
/// accessor call hands over the witness tables the compiler already knows.
///
/// An unsafe flag, so only where SwiftPM allows one: this package built as the root (a clone) or
/// as a local path dependency (the benchmarks, the examples), never as a versioned dependency,
/// whose checkout (`…/checkouts/…`, a registry download, an edited `Packages/…`) gets none, so
/// that a host can depend on the libraries. `AGENT_PAYMENTS_MANGLED_METADATA=1` leaves it out.
let directMetadata: [SwiftSetting] = {
    let checkout = ["/checkouts/", "/registry/downloads/", "/Packages/"].contains {
        Context.packageDirectory.contains($0)
    }
    let declined = Context.environment["AGENT_PAYMENTS_MANGLED_METADATA"].map { !$0.isEmpty && $0 != "0" } ?? false
    guard !checkout, !declined else { return [] }
    return [.unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"])]
}()

let strictness: [SwiftSetting] =
    directMetadata + [
        .swiftLanguageMode(.v6),
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ]

/// How executables are linked on Linux (Docs/benchmarks.md, "Cold start"): the Swift runtime
/// and Foundation statically, libcurl not at all (LazyCurl loads it on first use), and, where
/// glibc is 2.36 or later, relocations packed. `AGENT_PAYMENTS_PLAIN_LINK=1` links the ordinary
/// way, for toolchains other than swift.org's glibc one (musl SDK, no lld, cross builds).
let packedRelocations: [String] = {
    #if canImport(Glibc)
    var buffer = [CChar](repeating: 0, count: 64) // "glibc 2.36"
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &buffer, buffer.count) > 0 else { return [] }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let version = (text.split(separator: " ").last ?? "").split(separator: ".").compactMap { Int($0) }
    if version.count >= 2, (version[0], version[1]) >= (2, 36) {
        return ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"]
    }
    #endif
    return []
}()

let plainLinking = Context.environment["AGENT_PAYMENTS_PLAIN_LINK"].map { !$0.isEmpty && $0 != "0" } ?? false
let serverLinking: [LinkerSetting] =
    plainLinking
    ? []
    : [
        .unsafeFlags(
            packedRelocations + [
                "-static-stdlib", "-use-ld=lld", "-Xlinker", "--start-group",
                "-lFoundationNetworking", "-l_CFURLSessionInterface", "-lFoundation", "-lCoreFoundation",
                "-l_FoundationICU",
                "-lFoundationEssentials", "-l_FoundationCShims", "-l_FoundationCollections", "-lswiftSynchronization",
                "-Xlinker", "--end-group",
                // swiftc exports every symbol of the program's own objects (-export-dynamic):
                // ~90,000 dynamic symbols that the loader hashes and the runtime's backtracer
                // setup scans linearly (dladdr) at every start. Nothing looks them up.
                "-Xlinker", "--no-export-dynamic",
            ], .when(platforms: [.linux]))
    ]

/// The products of other packages the targets use, and the package of each.
let external: [String: String] = [
    "ArgumentParser": "swift-argument-parser", "AsyncHTTPClient": "async-http-client",
    "Configuration": "swift-configuration", "Crypto": "swift-crypto", "HTTPTypes": "swift-http-types",
    "Hummingbird": "hummingbird", "HummingbirdCore": "hummingbird", "HummingbirdTesting": "hummingbird",
    "JWTKit": "jwt-kit", "Logging": "swift-log", "NIOCore": "swift-nio", "NIOHTTP1": "swift-nio",
    "NIOHTTPTypes": "swift-nio-extras", "NIOPosix": "swift-nio", "NIOSSL": "swift-nio-ssl",
    "PostgresNIO": "postgres-nio", "_ConnectionPoolModule": "postgres-nio",
    "ServiceLifecycle": "swift-service-lifecycle", "CoreMetrics": "swift-metrics", "Metrics": "swift-metrics",
    "Prometheus": "swift-prometheus", "Tracing": "swift-distributed-tracing", "OTel": "swift-otel",
]

func uses(_ names: [String]) -> [Target.Dependency] {
    names.map { name in external[name].map { .product(name: name, package: $0) } ?? .target(name: name) }
}

/// A library in Sources/<name>.
func library(_ name: String, _ names: String...) -> Target {
    .target(name: name, dependencies: uses(names), swiftSettings: strictness)
}

/// An executable linked as the server is (`serverLinking`), in Sources/<name> or `path`.
func executable(_ name: String, path: String? = nil, _ names: String...) -> Target {
    .executableTarget(
        name: name, dependencies: uses(["LazyCurl"] + names), path: path, swiftSettings: strictness,
        linkerSettings: serverLinking)
}

/// A test-only library in Tests/<name>.
func testSupport(_ name: String, _ names: String...) -> Target {
    .target(name: name, dependencies: uses(names), path: "Tests/\(name)", swiftSettings: strictness)
}

/// The unit tests in Tests/<name>.
func tests(_ name: String, _ names: String...) -> Target {
    .testTarget(name: name, dependencies: uses(names), swiftSettings: strictness)
}

/// The libraries other hosts import, each a product of its own (Docs/embedding.md).
let products = [
    "MCPCore", "MCPClient", "TwilioPayments", "PaymentFlow", "PaymentEvents", "ListenerGuard", "CallbackHTTP",
    "TwilioSimulator", "PaymentsService", "PaymentsMCP", "MCPHTTP", "PaymentStorePostgres", "PaymentsSettings",
    // For executables linked as the server is (`serverLinking`), such as the benchmark harnesses.
    "LazyCurl",
]

let package = Package(
    name: "agent-payments",
    platforms: [.macOS(.v15)],
    products: products.map { .library(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: ["JSON", "YAML"]),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only: the default traits add gRPC and its transport (minutes of build).
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // The libraries, in import order.
        library("MCPCore", "CoreMetrics", "Tracing"),
        library("MCPClient", "MCPCore", "SpawnSupport"),
        library("TwilioPayments", "Crypto", "CoreMetrics", "Tracing"),
        library("PaymentFlow", "TwilioPayments", "Crypto", "CoreMetrics", "Tracing"),
        library(
            "PaymentEvents", "PaymentFlow", "TwilioPayments", "Crypto", "AsyncHTTPClient", "NIOCore", "NIOHTTP1",
            "Logging", "ServiceLifecycle", "CoreMetrics"),
        library(
            "ListenerGuard", "Hummingbird", "HummingbirdCore", "Logging", "NIOCore", "NIOHTTPTypes", "CoreMetrics"),
        library(
            "CallbackHTTP", "TwilioPayments", "SpawnSupport", "Hummingbird", "NIOCore", "NIOPosix", "Logging",
            "CoreMetrics"),
        library("TwilioSimulator", "TwilioPayments", "ListenerGuard", "Hummingbird", "HTTPTypes", "Logging"),
        library(
            "MCPHTTP", "MCPCore", "ConcurrencyHook", "Hummingbird", "HTTPTypes", "NIOCore", "NIOPosix", "Logging",
            "ServiceLifecycle", "Crypto",
            "JWTKit"),
        library(
            "PaymentStorePostgres", "PaymentFlow", "TwilioPayments", "PostgresNIO", "_ConnectionPoolModule", "NIOCore",
            "NIOPosix", "NIOSSL",
            "Logging", "ServiceLifecycle", "CoreMetrics"),
        library("PaymentsMCP", "MCPCore", "PaymentFlow", "TwilioPayments", "Logging", "ServiceLifecycle", "Tracing"),
        library(
            "PaymentsService", "PaymentFlow", "TwilioPayments", "CallbackHTTP", "TwilioSimulator", "ListenerGuard",
            "Hummingbird", "Logging", "ServiceLifecycle"),
        library(
            "PaymentsSettings", "PaymentsService", "PaymentsMCP", "PaymentFlow", "TwilioPayments", "TwilioSimulator",
            "ListenerGuard", "MCPHTTP", "PaymentStorePostgres", "PaymentEvents", "Logging", "Configuration", "OTel"),
        library("PaymentsDemo", "MCPCore", "MCPClient", "TwilioPayments"),
        library(
            "AgentPaymentsCLI", "ArgumentParser", "PaymentsSettings", "PaymentStorePostgres", "PaymentEvents",
            "PaymentFlow", "Logging"),
        // libcurl loaded on first use (see `serverLinking`); what a spawn needs from the C library.
        library("LazyCurl"),
        .target(name: "SpawnSupport"),
        // Swift's global-executor hook, found at link time (MCPHTTP's EventLoopExecutor).
        .target(name: "ConcurrencyHook"),

        // The server, wiring the libraries together; and the simulator as a process of its own.
        executable(
            "agent-payments", "MCPCore", "MCPClient", "PaymentsMCP", "PaymentFlow", "PaymentsService",
            "TwilioPayments", "CallbackHTTP", "TwilioSimulator", "ListenerGuard", "PaymentsSettings", "PaymentsDemo",
            "AgentPaymentsCLI", "MCPHTTP", "PaymentStorePostgres", "PaymentEvents", "ArgumentParser", "Hummingbird",
            "NIOCore", "NIOPosix", "Logging", "ServiceLifecycle", "Metrics", "Prometheus", "OTel"),
        executable("twilio-simulator", "TwilioSimulator", "TwilioPayments", "ListenerGuard", "Hummingbird", "Logging"),

        // What the interop tests start: a server of MCPCore alone, the callback routes alone, signatures.
        executable("mcpcore-fixture-server", path: "Tests/Executables/mcpcore-fixture-server", "MCPCore"),
        executable(
            "callback-receiver-check", path: "Tests/Executables/callback-receiver-check", "CallbackHTTP",
            "TwilioPayments", "Hummingbird", "Logging"),
        executable("twilio-signature-check", path: "Tests/Executables/twilio-signature-check", "TwilioPayments"),

        // The unit tests, one target per library, and what they share.
        testSupport("PaymentsTestSupport", "TwilioPayments", "PaymentFlow"),
        testSupport("HTTPTestSupport", "Logging", "ServiceLifecycle"),
        tests("MCPCoreTests", "MCPCore", "MCPClient"),
        tests("TwilioPaymentsTests", "TwilioPayments"),
        tests("PaymentFlowTests", "PaymentFlow", "PaymentsTestSupport"),
        tests(
            "PaymentEventsTests", "PaymentEvents", "PaymentFlow", "TwilioPayments", "PaymentsTestSupport",
            "HTTPTestSupport", "Hummingbird", "HTTPTypes", "Crypto"),
        tests("ListenerGuardTests", "ListenerGuard", "HTTPTestSupport", "Hummingbird"),
        tests(
            "CallbackHTTPTests", "CallbackHTTP", "TwilioSimulator", "PaymentsTestSupport", "HTTPTestSupport",
            "HummingbirdTesting", "HTTPTypes"),
        tests(
            "MCPHTTPTests", "MCPHTTP", "MCPCore", "ListenerGuard", "HTTPTestSupport", "Hummingbird", "JWTKit",
            "Crypto"),
        tests(
            "PaymentStorePostgresTests", "PaymentStorePostgres", "PaymentFlow", "TwilioPayments",
            "PaymentsTestSupport", "HTTPTestSupport", "SpawnSupport", "PostgresNIO", "Logging", "NIOCore", "NIOPosix"),
        tests(
            "PaymentsMCPTests", "PaymentsMCP", "MCPCore", "MCPClient", "PaymentFlow", "TwilioPayments",
            "PaymentsTestSupport"),
        tests(
            "PaymentsServiceTests", "PaymentsService", "PaymentFlow", "TwilioPayments", "TwilioSimulator",
            "CallbackHTTP", "ListenerGuard", "PaymentsTestSupport", "Hummingbird", "ServiceLifecycle"),
        tests("PaymentsSettingsTests", "PaymentsSettings", "PaymentsService", "ListenerGuard"),
        tests("AgentPaymentsCLITests", "AgentPaymentsCLI", "ArgumentParser"),
        // Rules about the repository itself: import rules, self-containment, documentation.
        tests("RepositoryTests"),
    ]
)
