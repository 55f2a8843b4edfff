// swift-tools-version:6.0
import PackageDescription

/// Settings every target shares: Swift 6 language mode (strict concurrency) plus the upcoming features
/// that keep imports and existentials explicit.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "osbackup",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "osbackup", targets: ["osbackup"]),
        .library(name: "BlockDelta", targets: ["BlockDelta"]),
        .library(name: "BackupEngine", targets: ["BackupEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // Per-cloud TLS (a CA bundle per cloud, verify off on request), proxies and timeouts, which
        // Foundation's URLSession on Linux cannot do per session.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // The emulator's HTTP server (on the swift-nio that AsyncHTTPClient already brings).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // clouds.yaml and secure.yaml.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // SHA-256 from the system OpenSSL libcrypto (Debian's libssl-dev): the same speed as
        // swift-crypto here, without compiling a second BoringSSL.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // tar/pax streams (`backup --to -`, `restore --from TARFILE`) from the system libarchive (Debian's
        // libarchive-dev), with its read filters for zstd, gzip and xz compressed tars.
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        // Per-block zstd compression of block data in directory repositories (Debian's libzstd-dev).
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // The few Linux calls Swift's Glibc module hides behind _GNU_SOURCE (O_DIRECT, fallocate, BLK ioctls).
        .target(name: "CLinuxIO"),
        .target(
            name: "BlockDelta",
            dependencies: [
                "COpenSSL",
                "CZstd",
                "CLinuxIO",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BackupEngine",
            dependencies: [
                "BlockDelta",
                "CLinuxIO",
                "CArchive",
                "OpenStackClient",
                .product(name: "Logging", package: "swift-log"),
                // Options files (`--config`, the Plugin line's `config=`), on the Yams clouds.yaml needs.
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Swift side of the Bacula plugin: `osbackup bacula-backend` (docs/bacula-protocol.md).
        .target(
            name: "BaculaBridge",
            dependencies: [
                "BackupEngine",
                "BlockDelta",
                "OpenStackClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OpenStackClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloudEmulator",
            dependencies: [
                "CLinuxIO",
                // The client of a real Keystone in front (`serve --keystone URL`).
                "OpenStackClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "osbackup",
            dependencies: [
                "BackupEngine",
                "BaculaBridge",
                "BlockDelta",
                "OpenStackClient",
                "CloudEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["BlockDelta", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BlockDeltaTests",
            // CZstd: the damage tests craft zstd frames of the wrong size.
            dependencies: ["BlockDelta", "TestSupport", "CZstd"],
            resources: [.copy("Golden")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BackupEngineTests",
            dependencies: ["BackupEngine", "BlockDelta", "TestSupport", "OpenStackClient", "CloudEmulator"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BaculaBridgeTests",
            dependencies: ["BaculaBridge", "BackupEngine", "BlockDelta", "TestSupport", "OpenStackClient", "CloudEmulator"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OpenStackClientTests",
            dependencies: ["OpenStackClient", "TestSupport", "CloudEmulator"],
            resources: [.copy("Recorded")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloudEmulatorTests",
            dependencies: [
                "CloudEmulator", "TestSupport", "OpenStackClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OsbackupCLITests",
            dependencies: [
                "osbackup", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
