// swift-tools-version: 6.0
import PackageDescription

// One module per job, dependencies pointing down only:
//   inmailq (CLI) -> InMail (domain) -> Queue (engine) -> Postgres (libpq client) -> CLibPQ (module map)
//   inmailq (CLI) -> EmbeddedPostgres (a private server via initdb/pg_ctl) -> Postgres
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
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "InMail",
            dependencies: ["Postgres", "Queue"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "inmailq",
            dependencies: [
                "Postgres",
                "EmbeddedPostgres",
                "Queue",
                "InMail",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "InmailqTests",
            dependencies: ["Postgres", "EmbeddedPostgres", "Queue", "InMail"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
