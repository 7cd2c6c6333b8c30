// swift-tools-version:6.1
import PackageDescription
#if canImport(Glibc)
import Glibc
#else
// Elsewhere (macOS) the executables are linked the ordinary way: nothing to ask the C library.
#endif

/// agent-payments' benchmark harnesses, a package of their own (as swift-nio keeps its
/// benchmarks) depending on the product by path. `Benchmarks/run` builds the server binaries
/// they start from the product's package and these from here, then prints every figure.
let product = "agent-payments"

let strictness: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The harnesses are linked as the server is, so that what they measure in process runs as it does
/// in the server: a copy of Package.swift's `serverLinking` (manifests cannot share code).
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
            ], .when(platforms: [.linux]))
    ]

/// A harness with its dependencies, in the folder of its name, linked as the server is.
func harness(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name, dependencies: ["BenchmarkSupport", .product(name: "LazyCurl", package: product)] + dependencies,
        path: name, swiftSettings: strictness, linkerSettings: serverLinking)
}

let package = Package(
    name: "agent-payments-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: product, path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // The Swift peer: the official MCP Swift SDK, as a Swift user would pick it.
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", exact: "0.12.1"),
    ],
    targets: [
        /// What the harnesses share: blocking stdio with a child server, clocks, percentiles.
        .target(
            name: "BenchmarkSupport",
            dependencies: [.product(name: "MCPCore", package: product), .product(name: "MCPClient", package: product)],
            path: "BenchmarkSupport", swiftSettings: strictness),
        /// The receiver's routes on a guarded loopback listener, for the callback harnesses.
        .target(
            name: "CallbackServing",
            dependencies: [
                "BenchmarkSupport", .product(name: "CallbackHTTP", package: product),
                .product(name: "ListenerGuard", package: product),
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
            ],
            path: "CallbackServing", swiftSettings: strictness),
        /// Spawn, round-trip and exit figures for MCPCore over real stdio.
        harness("MCPCoreBenchmark", [.product(name: "MCPCore", package: product)]),
        /// The whole server against its peers, the MCP Swift SDK's and the Python SDK's: cold start,
        /// round trips, a whole simulated payment, memory, exit.
        harness("AgentPaymentsBenchmark", [.product(name: "MCPCore", package: product)]),
        /// The Swift peer: the same tool names on the MCP Swift SDK, Twilio stubbed. Linked as the
        /// server is (static Foundation, libcurl loaded on first use), so that the comparison is of
        /// the code, not of the linking.
        .executableTarget(
            name: "SwiftSDKPeer",
            dependencies: [.product(name: "MCP", package: "swift-sdk"), .product(name: "LazyCurl", package: product)],
            path: "SwiftSDKPeer",
            swiftSettings: [.swiftLanguageMode(.v6)], linkerSettings: serverLinking),
        /// Request building, signatures and callback parsing.
        harness("TwilioPaymentsBenchmark", [.product(name: "TwilioPayments", package: product)]),
        /// Reducer steps per second, memory per live session (store, snapshot, rendered-status cache).
        harness(
            "PaymentFlowBenchmark",
            [
                .product(name: "PaymentFlow", package: product), .product(name: "TwilioPayments", package: product),
                .product(name: "PaymentsMCP", package: product), .product(name: "MCPClient", package: product),
                .product(name: "MCPCore", package: product), "HeapStats",
            ]),
        /// The C allocator's bytes in use (glibc's mallinfo2), for per-entry memory figures.
        .target(name: "HeapStats", path: "HeapStats"),
        /// Signed callbacks per second through the receiver's routes on a guarded listener.
        harness(
            "CallbackHTTPBenchmark",
            [
                "CallbackServing",
                .product(name: "CallbackHTTP", package: product), .product(name: "TwilioPayments", package: product),
                .product(name: "Logging", package: "swift-log"),
            ]),
        /// The HTTP stack's own floor for an MCP request: the server's listener with routes that only
        /// collect a POST's body and answer a fixed body of an MCP answer's size (`http_bench.py`).
        harness(
            "HTTPFloor",
            [
                .product(name: "MCPHTTP", package: product), .product(name: "ListenerGuard", package: product),
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        /// The PostgreSQL store under load: callbacks per second into it, cross-replica notification
        /// latency, a replica's memory with many live sessions.
        harness(
            "PostgresBenchmark",
            [
                "CallbackServing",
                .product(name: "CallbackHTTP", package: product), .product(name: "PaymentFlow", package: product),
                .product(name: "PaymentStorePostgres", package: product),
                .product(name: "TwilioPayments", package: product), .product(name: "MCPHTTP", package: product),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
    ]
)
