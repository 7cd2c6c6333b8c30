// swift-tools-version:6.1
import PackageDescription

/// The parsers hostile input reaches, as libFuzzer targets: a package of its own depending on
/// the product by path. `scripts/fuzz` fuzzes them; `scripts/test` replays every kept input
/// (`Fuzz/Corpus/<target>/`) with `FuzzRegressionTests`.
let strictness: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let product = "agent-payments"

let package = Package(
    name: "agent-payments-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: product, path: "..")],
    targets: [
        /// JSON, a JSON-RPC line through the engine, a callback body, HTTP headers, a JWT.
        .target(
            name: "FuzzTargets",
            dependencies: [
                .product(name: "MCPCore", package: product), .product(name: "MCPHTTP", package: product),
                .product(name: "TwilioPayments", package: product), .product(name: "PaymentFlow", package: product),
            ],
            path: "FuzzTargets", swiftSettings: strictness),
        /// libFuzzer's driver for FuzzTargets when built by `scripts/fuzz` (-DFUZZING); otherwise a
        /// replayer of saved inputs. lld links it (gold fails on the sanitizer runtime).
        .executableTarget(
            name: "parser-fuzz", dependencies: ["FuzzTargets"], path: "parser-fuzz", swiftSettings: strictness,
            linkerSettings: [.unsafeFlags(["-use-ld=lld"], .when(platforms: [.linux]))]),
        /// Every kept fuzz input (seeds and the crashes found) replayed on every test run.
        .testTarget(
            name: "FuzzRegressionTests", dependencies: ["FuzzTargets"], path: "Tests/FuzzRegressionTests",
            swiftSettings: strictness),
    ]
)
