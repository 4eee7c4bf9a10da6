// swift-tools-version: 6.1
import PackageDescription

// One module per job, dependencies pointing down only:
//   inmailq (CLI) -> InMail (domain) -> Queue (engine) -> Postgres (libpq client) -> CLibPQ (module map)
//   inmailq (CLI) -> EmbeddedPostgres (a private server via initdb/pg_ctl) -> Postgres
//   InMail -> Gateway (an HTTP client of the LinkedIn gateway's API, knows nothing of queues or SQL)
//   inmailq (CLI) -> GatewayDouble (a local server speaking the gateway's documented API, for tests and demos)
//   inmailq (CLI) -> Server (the HTTP face: the gateway's webhooks into the inbox, probes, /metrics) -> InMail
//   Server -> Console (the operators' read-only web pages, per agency: Mustache templates, bcrypt logins)
//   Console -> Postgres (it reads the InMail schema's views under the agency's row-level security)
//   Queue, Gateway, InMail and Server record metrics through swift-metrics; Server exposes them
//   in Prometheus's text format (swift-prometheus), and only the CLI chooses that backend.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "inmailq",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "inmailq", targets: ["inmailq"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Without its default traits: no swift-configuration, no full Foundation in the server.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // Only its bcrypt target (a C core, no other dependency) is built.
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "EmbeddedPostgres",
            dependencies: ["Postgres"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Queue",
            dependencies: [
                "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Gateway",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GatewayDouble",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "InMail",
            dependencies: [
                "Postgres", "Queue", "Gateway",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Console",
            dependencies: [
                "Postgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Server",
            dependencies: [
                "Postgres", "InMail", "Console",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "inmailq",
            dependencies: [
                "Postgres",
                "EmbeddedPostgres",
                "Queue",
                "InMail",
                "Gateway",
                "GatewayDouble",
                "Server",
                "Console",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "InmailqTests",
            dependencies: [
                "Postgres", "EmbeddedPostgres", "Queue", "InMail", "Gateway", "GatewayDouble", "Server", "Console",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
