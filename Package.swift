// swift-tools-version:6.1
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// agent-payments: take a card or bank payment on a live Twilio call, driven by an AI agent
/// over the Model Context Protocol, without the agent ever seeing the card.
///
/// Module map and import rules: Docs/architecture.md.
let strictness: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// How the server executable is linked on Linux, so that the binary `swift build -c release`
/// makes is the fast one (Docs/benchmarks.md: the dynamic loader's symbol lookups over ~50
/// shared libraries were most of a cold start): the Swift runtime and Foundation statically,
/// with the static libraries Foundation needs named (compiling with `-static-stdlib` would
/// name them, and libcurl with them), and libcurl not at all: LazyCurl defines the curl
/// functions URLSession calls and loads libcurl.so.4 itself on first use. Executables only: a
/// library product with unsafe flags could not be a dependency.
///
/// Where the C library loads packed relative relocations (glibc 2.36 and later), they are
/// packed: the ~115,000 relocations of the static image then fill 22 KB instead of 2.7 MB, about
/// a millisecond of every start. The check is this machine's glibc, where the binary is built.
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

/// Every executable of the package is linked this way (each also depends on LazyCurl), so the
/// benchmark harnesses and stand-ins are built as the server is. It assumes the glibc Linux
/// toolchain from swift.org (static Foundation, lld). For anything else — the fully static musl
/// SDK, a distribution's Swift without lld, a cross build — set `AGENT_PAYMENTS_PLAIN_LINK=1`
/// and the executables are linked the ordinary way (LazyCurl then forwards to the libcurl the
/// binary links anyway).
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

let package = Package(
    name: "agent-payments",
    platforms: [.macOS(.v15)],
    products: [
        /// The dual-era MCP codec, server engine and stdio transport.
        .library(name: "MCPCore", targets: ["MCPCore"]),
        /// A small MCP client for both eras: in-process and child-process channels.
        .library(name: "MCPClient", targets: ["MCPClient"]),
        /// The Twilio Payments REST client, status-callback parsing and webhook signatures.
        .library(name: "TwilioPayments", targets: ["TwilioPayments"]),
        /// The payment session state machine, coordinator and store; embeddable in any host.
        .library(name: "PaymentFlow", targets: ["PaymentFlow"]),
        /// Payment events pushed to the voice app: the event model, Standard Webhooks signing,
        /// endpoints with SSRF-safe targets, delivery with retries in order per payment.
        .library(name: "PaymentEvents", targets: ["PaymentEvents"]),
        /// The bounds every HTTP listener keeps against slow and idle clients.
        .library(name: "ListenerGuard", targets: ["ListenerGuard"]),
        /// The status-callback receiver (Hummingbird) and the public-URL supervision (ngrok).
        .library(name: "CallbackHTTP", targets: ["CallbackHTTP"]),
        /// A stand-in for api.twilio.com's Payments and Calls endpoints with scriptable callers.
        .library(name: "TwilioSimulator", targets: ["TwilioSimulator"]),
        /// A whole payments system from a typed configuration, as lifecycle services: the
        /// coordinator, live or simulated Twilio, the callback receiver, its public URL, expiry.
        .library(name: "PaymentsService", targets: ["PaymentsService"]),
        /// The MCP face of the payment flow: tools, the status resource, prompts, completions, logs.
        .library(name: "PaymentsMCP", targets: ["PaymentsMCP"]),
        /// MCP over Streamable HTTP on MCPCore's engine, both eras, with bearer tokens and an
        /// OAuth 2.1 resource server, as Hummingbird routes.
        .library(name: "MCPHTTP", targets: ["MCPHTTP"]),
        /// Payment sessions in PostgreSQL shared by replicas: the store, the LISTEN/NOTIFY change
        /// feed, versioned migrations.
        .library(name: "PaymentStorePostgres", targets: ["PaymentStorePostgres"]),
        /// Every setting declared once and read through swift-configuration (command line,
        /// environment, a JSON or YAML file), turned into the libraries' typed configuration.
        .library(name: "PaymentsSettings", targets: ["PaymentsSettings"]),
    ],
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
    ],
    targets: [
        .target(
            name: "MCPCore",
            swiftSettings: strictness
        ),
        /// The client side of MCPCore's codec: what the tests, the benchmarks and the demo drive
        /// servers with.
        .target(
            name: "MCPClient",
            dependencies: ["MCPCore"],
            swiftSettings: strictness
        ),
        /// A server built only from MCPCore that the interop tests and the benchmark drive.
        .executableTarget(
            name: "mcpcore-fixture-server",
            dependencies: ["LazyCurl", "MCPCore"],
            path: "Tests/Executables/mcpcore-fixture-server",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// What the benchmarks share: blocking stdio with a child server, clocks, percentiles.
        .target(
            name: "BenchmarkSupport",
            dependencies: ["MCPCore", "MCPClient"],
            path: "Benchmarks/BenchmarkSupport",
            swiftSettings: strictness
        ),
        /// Spawn, round-trip and exit figures for MCPCore over real stdio (`Benchmarks/run`).
        .executableTarget(
            name: "MCPCoreBenchmark",
            dependencies: ["LazyCurl", "MCPCore", "BenchmarkSupport"],
            path: "Benchmarks/MCPCoreBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// The whole server against the Python-SDK peer: cold start, round trips, a whole
        /// simulated payment, memory, exit (`Benchmarks/run`).
        .executableTarget(
            name: "AgentPaymentsBenchmark",
            dependencies: ["LazyCurl", "MCPCore", "BenchmarkSupport"],
            path: "Benchmarks/AgentPaymentsBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        .target(
            name: "TwilioPayments",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictness
        ),
        .target(
            name: "PaymentFlow",
            dependencies: ["TwilioPayments"],
            swiftSettings: strictness
        ),
        .target(
            name: "PaymentEvents",
            dependencies: [
                "PaymentFlow", "TwilioPayments",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "PaymentEventsTests",
            dependencies: [
                "PaymentEvents", "PaymentFlow", "TwilioPayments", "PaymentsTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        /// Reducer steps per second and memory per live session (`Benchmarks/run`).
        .executableTarget(
            name: "PaymentFlowBenchmark",
            dependencies: ["LazyCurl", "BenchmarkSupport", "PaymentFlow"],
            path: "Benchmarks/PaymentFlowBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// The in-memory Twilio Payments fake the unit tests share.
        .target(
            name: "PaymentsTestSupport",
            dependencies: ["TwilioPayments"],
            path: "Tests/PaymentsTestSupport",
            swiftSettings: strictness
        ),
        .testTarget(
            name: "PaymentFlowTests",
            dependencies: ["PaymentFlow", "PaymentsTestSupport"],
            swiftSettings: strictness
        ),
        /// The bounds every listener keeps: head, body-rate, request and idle timeouts, a
        /// connection cap with quick refusal, the open-file limit.
        .target(
            name: "ListenerGuard",
            dependencies: [
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strictness
        ),
        /// A blocking loopback socket client for the listener tests.
        .target(
            name: "HTTPTestSupport",
            path: "Tests/HTTPTestSupport",
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ListenerGuardTests",
            dependencies: ["ListenerGuard", "HTTPTestSupport", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: strictness
        ),
        .target(
            name: "CallbackHTTP",
            dependencies: [
                "TwilioPayments", "ListenerGuard",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "TwilioSimulator",
            dependencies: [
                "TwilioPayments", "ListenerGuard",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        /// Streamable HTTP for MCPCore's engine: the modern era per POST, legacy sessions, SSE,
        /// Origin and bearer checks (static tokens, JWTs from an OAuth issuer), limits.
        .target(
            name: "MCPHTTP",
            dependencies: [
                "MCPCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "MCPHTTPTests",
            dependencies: [
                "MCPHTTP", "MCPCore", "ListenerGuard", "HTTPTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        /// The PostgreSQL store and change feed: any number of replicas share one database.
        .target(
            name: "PaymentStorePostgres",
            dependencies: [
                "PaymentFlow", "TwilioPayments",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "PaymentStorePostgresTests",
            dependencies: [
                "PaymentStorePostgres", "PaymentFlow", "TwilioPayments", "PaymentsTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "PaymentsMCP",
            dependencies: [
                "MCPCore", "PaymentFlow", "TwilioPayments", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        /// Assembles a running system from a typed configuration: each long-running part a
        /// swift-service-lifecycle Service, readiness by announcement, graceful shutdown.
        .target(
            name: "PaymentsService",
            dependencies: [
                "PaymentFlow", "TwilioPayments", "CallbackHTTP", "TwilioSimulator", "ListenerGuard",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "PaymentsServiceTests",
            dependencies: [
                "PaymentsService", "PaymentFlow", "TwilioPayments", "TwilioSimulator", "CallbackHTTP",
                "PaymentsTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        /// libcurl, loaded on first use: the curl functions FoundationNetworking calls, forwarding
        /// to libcurl.so.4 opened with dlopen (Linux; elsewhere empty). Only the server
        /// executable links it, so its start does not wait for libcurl's ~30 shared libraries.
        .target(name: "LazyCurl"),
        /// Every setting, declared once and read in one place (swift-configuration), and the
        /// typed configuration it makes for the libraries; `config check`'s report.
        .target(
            name: "PaymentsSettings",
            dependencies: [
                "PaymentsService", "PaymentsMCP", "PaymentFlow", "TwilioPayments", "TwilioSimulator", "ListenerGuard",
                "MCPHTTP", "PaymentStorePostgres", "PaymentEvents",
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "PaymentsSettingsTests",
            dependencies: ["PaymentsSettings", "PaymentsService", "ListenerGuard"],
            swiftSettings: strictness
        ),
        /// A complete simulated payment driven over MCP against an agent-payments child, printed
        /// step by step (`agent-payments demo`).
        .target(
            name: "PaymentsDemo",
            dependencies: ["MCPCore", "MCPClient", "TwilioPayments"],
            swiftSettings: strictness
        ),
        /// The MCP server executable: arguments, configuration from the environment, and one
        /// ServiceGroup (the payments system, stdio MCP); and the demo.
        .executableTarget(
            name: "agent-payments",
            dependencies: [
                "MCPCore", "MCPClient", "PaymentsMCP", "PaymentFlow", "PaymentsService", "TwilioPayments",
                "CallbackHTTP", "TwilioSimulator", "ListenerGuard", "PaymentsSettings", "PaymentsDemo",
                "MCPHTTP", "PaymentStorePostgres", "PaymentEvents", "LazyCurl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        .testTarget(
            name: "PaymentsMCPTests",
            dependencies: [
                "PaymentsMCP", "MCPCore", "MCPClient", "PaymentFlow", "TwilioPayments", "PaymentsTestSupport",
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "CallbackHTTPTests",
            dependencies: [
                "CallbackHTTP", "TwilioSimulator", "PaymentsTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictness
        ),
        /// TwilioSimulator as a standalone process: a Twilio to point any client at.
        .executableTarget(
            name: "twilio-simulator",
            dependencies: [
                "LazyCurl", "TwilioSimulator", "TwilioPayments", "ListenerGuard",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// Runs a CallbackReceiver and prints what it accepts, so the interop tests can sign
        /// with Twilio's Python validator against the URLs the receiver builds.
        .executableTarget(
            name: "callback-receiver-check",
            dependencies: [
                "LazyCurl", "CallbackHTTP", "TwilioPayments", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Executables/callback-receiver-check",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// The PostgreSQL store under load: callbacks per second into it, cross-replica
        /// notification latency, a replica's memory with many live sessions (`Benchmarks/run`).
        .executableTarget(
            name: "PostgresBenchmark",
            dependencies: [
                "LazyCurl", "BenchmarkSupport", "CallbackHTTP", "PaymentFlow", "PaymentStorePostgres", "TwilioPayments",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/PostgresBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// Signed callbacks per second through the receiver's real socket (`Benchmarks/run`).
        .executableTarget(
            name: "CallbackHTTPBenchmark",
            dependencies: ["LazyCurl", "BenchmarkSupport", "CallbackHTTP", "TwilioPayments"],
            path: "Benchmarks/CallbackHTTPBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// Signs JSON-lines test cases with TwilioPayments so the interop tests can compare
        /// against Twilio's own Python validator.
        .executableTarget(
            name: "twilio-signature-check",
            dependencies: ["LazyCurl", "TwilioPayments"],
            path: "Tests/Executables/twilio-signature-check",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        /// Webhook signature validations per second on one core (`Benchmarks/run`).
        .executableTarget(
            name: "TwilioPaymentsBenchmark",
            dependencies: ["LazyCurl", "BenchmarkSupport", "TwilioPayments"],
            path: "Benchmarks/TwilioPaymentsBenchmark",
            swiftSettings: strictness,
            linkerSettings: serverLinking
        ),
        .testTarget(
            name: "TwilioPaymentsTests",
            dependencies: ["TwilioPayments"],
            swiftSettings: strictness
        ),
        /// Rules about the repository itself: it is self-contained (no path leads outside it).
        .testTarget(
            name: "RepositoryTests",
            swiftSettings: strictness
        ),
        /// The parsers hostile input reaches, as fuzz targets (`scripts/fuzz`).
        .target(
            name: "FuzzTargets",
            dependencies: ["MCPCore", "MCPHTTP", "TwilioPayments", "PaymentFlow"],
            path: "Fuzz/FuzzTargets",
            swiftSettings: strictness
        ),
        /// libFuzzer's driver for FuzzTargets when built by `scripts/fuzz` (-DFUZZING); otherwise
        /// a replayer of saved inputs. lld links it (gold fails on the sanitizer runtime).
        .executableTarget(
            name: "parser-fuzz",
            dependencies: ["FuzzTargets"],
            path: "Fuzz/parser-fuzz",
            swiftSettings: strictness,
            linkerSettings: [.unsafeFlags(["-use-ld=lld"], .when(platforms: [.linux]))]
        ),
        /// Every kept fuzz input (seeds and the crashes found) replayed on every test run.
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzTargets"],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "MCPCoreTests",
            dependencies: ["MCPCore", "MCPClient"],
            swiftSettings: strictness
        ),
    ]
)
