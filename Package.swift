// swift-tools-version: 6.2
import PackageDescription

// Warnings are errors in Shoal's own builds: `ops/test` passes `-Xswiftc -warnings-as-errors` (the
// native build system keeps it off dependencies), so a package depending on ShoalClient never
// inherits the setting. Linux only: no macOS build is checked, so the manifest claims no Apple
// platform.
let package = Package(
    name: "Shoal",
    products: [
        .library(name: "ShoalSQLite", targets: ["ShoalSQLite"]),
        .library(name: "ShoalReplication", targets: ["ShoalReplication"]),
        .library(name: "ShoalPool", targets: ["ShoalPool"]),
        .library(name: "ShoalClient", targets: ["ShoalClient"]),
        .executable(name: "shoal", targets: ["shoal"]),
        .executable(name: "shoal-bench", targets: ["shoal-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Layer 0: the C surface of the system libsqlite3.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

        // Layer 0: value types shared by servers, client and CLI (wire formats).
        .target(
            name: "ShoalModel"
        ),
        .testTarget(
            name: "ShoalModelTests",
            dependencies: ["ShoalModel"],
            resources: [.copy("captures")]
        ),

        // Layer 0: time: deadlines, sleeps that let go when cancelled, durations in units.
        .target(
            name: "ShoalTime"
        ),
        .testTarget(
            name: "ShoalTimeTests",
            dependencies: ["ShoalTime"]
        ),

        // Layer 1: the only Swift code that calls sqlite3, and the threads its blocking work runs on;
        // with the VFS (in C) that bounds each connection's temporary files.
        .target(
            name: "CSQLiteTempBudget",
            dependencies: ["CSQLite"]
        ),
        .target(
            name: "ShoalSQLite",
            dependencies: ["CSQLite", "CSQLiteTempBudget", "ShoalTime"]
        ),
        .testTarget(
            name: "ShoalSQLiteTests",
            dependencies: ["ShoalSQLite", "ShoalTestSupport"]
        ),

        // Layer 1: outbound HTTP (one NIO client per process, deadlines that always fire, through ShoalTime's withDeadline).
        .target(
            name: "ShoalHTTP",
            dependencies: [
                "ShoalTime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // Layer 1: the generic bounded pool of per-tenant resources.
        .target(
            name: "ShoalPool",
            dependencies: ["ShoalTime"]
        ),
        .testTarget(
            name: "ShoalPoolTests",
            dependencies: ["ShoalPool"]
        ),

        // Layer 2: generations and the WAL as the log on primaries, apply on replicas.
        .target(
            name: "ShoalReplication",
            dependencies: ["ShoalSQLite", "ShoalTime"]
        ),
        .testTarget(
            name: "ShoalReplicationTests",
            dependencies: ["ShoalReplication", "ShoalSQLite", "ShoalTestSupport"]
        ),
        // The child process the crash tests kill (built by `swift build --build-tests`).
        .executableTarget(
            name: "shoal-crash-helper",
            dependencies: ["ShoalReplication", "ShoalSQLite", "ShoalTestSupport"],
            path: "Tests/CrashHelper"
        ),
        // libFuzzer over the request decoders of both servers (`ops/fuzz` builds it with
        // `-sanitize=fuzzer -DSHOAL_FUZZ` under .build-fuzz); a plain build replays the seed corpus.
        .executableTarget(
            name: "shoal-fuzz-decoders",
            dependencies: ["ShoalModel"],
            path: "Tests/Fuzz",
            exclude: ["corpus", "decoders.dict"]
        ),

        // Layer 3: the sync protocol from the replica's side (the HTTP frame source, the node's
        // database URL with its token, their errors), below both the client and the node.
        .target(
            name: "ShoalSyncTransport",
            dependencies: ["ShoalModel", "ShoalSQLite", "ShoalReplication", "ShoalTime", "ShoalHTTP"]
        ),

        // Layer 3: backups: each primary's frames and commit times shipped to an object store (a
        // directory or S3), restores to any committed point.
        .target(
            name: "ShoalBackup",
            dependencies: [
                "ShoalReplication", "ShoalSQLite", "ShoalHTTP", "ShoalTime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ShoalBackupTests",
            dependencies: ["ShoalBackup", "ShoalReplication", "ShoalSQLite", "ShoalTestSupport"]
        ),

        // Layer 4: the client library (no HTTP server stack).
        .target(
            name: "ShoalClient",
            dependencies: [
                "ShoalModel", "ShoalSQLite", "ShoalReplication", "ShoalSyncTransport", "ShoalPool", "ShoalTime",
                "ShoalHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "ShoalClientTests",
            dependencies: [
                "ShoalClient", "ShoalNode", "ShoalSQLite", "ShoalHTTP", "ShoalTestSupport", "ShoalNodeTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Layer 3: what both servers (node and control plane) share of Hummingbird: the limited
        // HTTP/1 channel, bearer tokens (parsed once, required by middleware), background work as
        // services of a ServiceGroup.
        .target(
            name: "ShoalServerKit",
            dependencies: [
                "ShoalHTTP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // Layer 4: the data plane node.
        .target(
            name: "ShoalNode",
            dependencies: [
                "ShoalModel", "ShoalSQLite", "ShoalReplication", "ShoalSyncTransport", "ShoalPool", "ShoalTime",
                "ShoalHTTP", "ShoalServerKit", "ShoalBackup",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ShoalNodeTests",
            dependencies: [
                "ShoalNode", "ShoalTestSupport", "ShoalNodeTestSupport", "ShoalModel", "ShoalReplication", "ShoalSQLite", "ShoalHTTP",
                "ShoalClient", "ShoalBackup",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ]
        ),

        // The catalog's schema migrations (`migrations/`), embedded in the binary.
        .target(
            name: "ShoalMigrations",
            path: "migrations",
            exclude: ["README.md"],
            resources: [
                .embedInCode("sqlite/v0001_initial.sqlite.sql"),
                .embedInCode("postgresql/v0001_initial.postgresql.sql"),
                .embedInCode("sqlite/v0002_issued_tokens_and_operator_limits.sqlite.sql"),
                .embedInCode("postgresql/v0002_issued_tokens_and_operator_limits.postgresql.sql"),
                .embedInCode("sqlite/v0003_deletions.sqlite.sql"),
                .embedInCode("postgresql/v0003_deletions.postgresql.sql"),
                .embedInCode("sqlite/v0004_node_credentials.sqlite.sql"),
                .embedInCode("postgresql/v0004_node_credentials.postgresql.sql"),
                .embedInCode("sqlite/v0005_api_tokens.sqlite.sql"),
                .embedInCode("postgresql/v0005_api_tokens.postgresql.sql"),
                .embedInCode("sqlite/v0006_settings_pushes.sqlite.sql"),
                .embedInCode("postgresql/v0006_settings_pushes.postgresql.sql"),
                .embedInCode("sqlite/v0007_storage_usage.sqlite.sql"),
                .embedInCode("postgresql/v0007_storage_usage.postgresql.sql"),
                .embedInCode("sqlite/v0008_tenant_schemas.sqlite.sql"),
                .embedInCode("postgresql/v0008_tenant_schemas.postgresql.sql"),
                .embedInCode("sqlite/v0009_backups.sqlite.sql"),
                .embedInCode("postgresql/v0009_backups.postgresql.sql"),
            ]
        ),

        // Layer 4: the control plane (catalog on SQLite or PostgreSQL, Platform API).
        .target(
            name: "ShoalControl",
            dependencies: [
                "ShoalModel", "ShoalSQLite", "ShoalMigrations", "ShoalHTTP", "ShoalTime", "ShoalServerKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            resources: [.embedInCode("openapi.json")]
        ),
        .testTarget(
            name: "ShoalControlTests",
            dependencies: [
                "ShoalControl", "ShoalTestSupport", "ShoalServerKit", "ShoalNode", "ShoalModel", "ShoalClient", "ShoalSQLite",
                "ShoalHTTP", "ShoalBackup", "ShoalReplication",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Layer 5: the one executable.
        .executableTarget(
            name: "shoal",
            dependencies: [
                "ShoalNode", "ShoalControl", "ShoalModel", "ShoalClient", "ShoalHTTP", "ShoalSQLite",
                "ShoalReplication", "ShoalServerKit", "ShoalSyncTransport", "ShoalBackup",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Fixtures more than one test target uses (raw sockets for the servers' connection limits,
        // temporary directories, a scriptable frame source, Prometheus samples, a seeded generator).
        .target(
            name: "ShoalTestSupport",
            dependencies: ["ShoalReplication", "ShoalSQLite"],
            path: "Tests/ShoalTestSupport"
        ),

        // A real node on a loopback port for one test, and the logs it wrote (node, client and
        // control-plane tests).
        .target(
            name: "ShoalNodeTestSupport",
            dependencies: [
                "ShoalNode", "ShoalHTTP", "ShoalTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ShoalNodeTestSupport"
        ),

        // The built `shoal` binary, run as users run it.
        .testTarget(
            name: "ShoalCLITests",
            dependencies: ["ShoalHTTP", "ShoalClient", "ShoalSQLite", "ShoalTestSupport", "ShoalBackup", "ShoalReplication"]
        ),

        // Benchmarks: release-build executables that print one JSON object per line.
        .target(
            name: "CBenchBaseline",
            dependencies: ["CSQLite"],
            path: "Benchmarks/CBenchBaseline"
        ),
        .executableTarget(
            name: "shoal-bench",
            dependencies: [
                "ShoalSQLite",
                "ShoalReplication",
                "ShoalNode",
                "ShoalClient",
                "ShoalControl",
                "ShoalHTTP",
                "ShoalServerKit",
                "ShoalBackup",
                "CBenchBaseline",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/shoal-bench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
