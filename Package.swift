// swift-tools-version:6.0
import PackageDescription

/// agent-payments: take a card or bank payment on a live Twilio call, driven by an AI agent
/// over the Model Context Protocol, without the agent ever seeing the card.
///
/// Module map and import rules: Docs/architecture.md.
let strictness: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "agent-payments",
    platforms: [.macOS(.v15)],
    products: [
        /// The dual-era MCP codec, server engine, stdio transport and a small client.
        .library(name: "MCPCore", targets: ["MCPCore"]),
    ],
    targets: [
        .target(
            name: "MCPCore",
            swiftSettings: strictness
        ),
        /// A server built only from MCPCore that the interop tests and the benchmark drive.
        .executableTarget(
            name: "mcpcore-fixture-server",
            dependencies: ["MCPCore"],
            swiftSettings: strictness
        ),
        /// Spawn, round-trip and exit figures for MCPCore over real stdio (`Benchmarks/run`).
        .executableTarget(
            name: "MCPCoreBenchmark",
            dependencies: ["MCPCore"],
            path: "Benchmarks/MCPCoreBenchmark",
            swiftSettings: strictness
        ),
        .testTarget(
            name: "MCPCoreTests",
            dependencies: ["MCPCore"],
            swiftSettings: strictness
        ),
    ]
)
