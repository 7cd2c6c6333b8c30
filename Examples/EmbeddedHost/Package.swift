// swift-tools-version:6.0
import PackageDescription

/// agent-payments embedded in a host of its own, with no MCP: the payments system runs as
/// lifecycle services in the host's ServiceGroup. Walkthrough: Docs/embedding.md.
let package = Package(
    name: "EmbeddedHost",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "agent-payments", path: "../.."),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "EmbeddedHost",
            dependencies: [
                .product(name: "PaymentsService", package: "agent-payments"),
                .product(name: "ListenerGuard", package: "agent-payments"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PaymentFlow", package: "agent-payments"),
                .product(name: "TwilioPayments", package: "agent-payments"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
