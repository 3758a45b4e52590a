import Foundation
import Hummingbird
import Logging
import ShoalModel
import ShoalSQLite
import ShoalServerKit
import Synchronization

extension ControlPlane {
    /// How long a rollout's lease lasts unrenewed: another instance takes the rollout over this long
    /// after its driver stopped renewing (killed, cut off).
    static let rolloutLeaseMs: Int64 = 30_000
    /// Tasks read from the catalog at a time, their outcomes recorded together: sixteen per unit of
    /// concurrency, 32 to 500, so progress shows (and a pause holds) within a page's time.
    static func rolloutPageSize(concurrency: Int64) -> Int {
        Int(min(500, max(32, concurrency * 16)))
    }

    /// `…/groups/{group}/migrations`: the group's tenant schema and its rollouts.
    func addMigrationRoutes(_ routes: RouterGroup<ServerRequestContext>) {
        routes.get("") { request, context in
            let principal = try await self.principal(context)
            let includeSQL = request.uri.queryParameters.get("sql") == "true"
            return try Self.json(
                try await self.catalog.migrationList(
                    organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                    includeSQL: includeSQL, for: principal))
        }
        routes.post("") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decode(Platform.MigrationCreation.self, from: request)
            let migration = try await self.catalog.addMigration(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                migration: body, by: principal)
            return try Self.json(["migration": migration])
        }
        routes.post("apply") { request, context in
            let principal = try await self.principal(context)
            let body = try await self.decodeIfPresent(Platform.RolloutCreation.self, from: request)
            let rollout = try await self.catalog.startRollout(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                options: body ?? Platform.RolloutCreation(), by: principal)
            return try Self.json(["rollout": rollout])
        }
        routes.get("rollout") { request, context in
            let principal = try await self.principal(context)
            let rollout = try await self.catalog.rollout(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                for: principal)
            return try Self.json(["rollout": rollout])
        }
        routes.post("rollout/:action") { request, context in
            let principal = try await self.principal(context)
            let name = try Self.parameter(context, "action")
            guard let action = Catalog.RolloutAction(rawValue: name) else {
                throw ControlError.notFound(
                    "a rollout can be paused, resumed, retried or skipped, not \(name.prefix(32))")
            }
            let rollout = try await self.catalog.controlRollout(
                organization: try Self.parameter(context, "org"), group: try Self.parameter(context, "group"),
                action: action, by: principal)
            return try Self.json(["rollout": rollout])
        }
    }

    /// Drives the rollouts of tenant schemas every `interval` until cancelled: takes the lease of each
    /// rollout with work to do that no other instance drives, sends its tasks to the nodes, records
    /// what they came to, and moves it through its phases. A rollout whose driver was killed is taken
    /// over once its lease lapses, and resumes where the catalog says it was: tasks already done are
    /// not sent again, and one done but not recorded finds its migrations applied (each database
    /// records its own) and applies nothing twice.
    public func runRollouts(every interval: Duration = .milliseconds(500)) async {
        while !Task.isCancelled {
            // Straight on while there is work; a pause only when every rollout waits.
            if await driveRollouts() == 0 { try? await Task.sleep(for: interval) }
        }
    }

    /// One pass: one page of tasks of every rollout this instance holds or can take (so a large
    /// rollout never starves the others), and each moved on through its phases. Returns how many
    /// rollouts had work.
    @discardableResult
    public func driveRollouts() async -> Int {
        do {
            let leased = try await catalog.leaseRollouts(owner: instanceID, leaseMs: Self.rolloutLeaseMs)
            var worked = 0
            for rollout in leased {
                guard !Task.isCancelled else { break }
                if await drivePage(of: rollout) { worked += 1 }
            }
            return worked
        } catch {
            logger.warning("rollout.catalog_failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Sends one page of a rollout's pending tasks, records what they came to and moves the rollout
    /// on; returns whether anything was done or moved.
    private func drivePage(of leased: Catalog.RolloutRecord) async -> Bool {
        var metadata: Logger.Metadata = ["rollout.id": "\(leased.id)", "group.id": "\(leased.groupID)"]
        do {
            guard
                let rollout = try await catalog.renewRolloutLease(
                    leased.id, owner: instanceID, leaseMs: Self.rolloutLeaseMs)
            else { return false }
            guard rollout.state == "canary" || rollout.state == "running" else {
                if rollout.state == "soaking" { return try await catalog.advance(rollout)?.state != rollout.state }
                return false
            }
            let tasks = try await catalog.pendingTasks(
                of: rollout, canaryOnly: rollout.state == "canary",
                limit: Self.rolloutPageSize(concurrency: rollout.concurrency))
            if !tasks.isEmpty {
                let (_, migrations) = try await catalog.migrations(ofGroup: rollout.groupID)
                let expected = ExpectedSchemas(migrations: migrations)
                let outcomes = await run(tasks, of: rollout, migrations: migrations, expected: expected)
                guard try await catalog.record(outcomes, of: rollout, owner: instanceID) else {
                    logger.warning("rollout.lease_lost", metadata: metadata)
                    return false
                }
                let failed = outcomes.filter { $0.error != nil }
                if !failed.isEmpty {
                    metadata["rollout.failed"] = "\(failed.count)"
                    logger.warning("rollout.tasks_failed", metadata: metadata)
                }
            }
            guard let after = try await catalog.advance(rollout) else { return false }
            if after.state != rollout.state {
                metadata["rollout.state"] = "\(after.state)"
                logger.info("rollout.state", metadata: metadata)
            }
            // Nothing pending and nothing moved: it waits (for the schema cache to expire since the
            // release, at most a few seconds), and a later pass looks again.
            return !tasks.isEmpty || after.state != rollout.state
        } catch {
            metadata["error"] = "\(error)"
            logger.warning("rollout.drive_failed", metadata: metadata)
            return false
        }
    }

    /// Sends the tasks to their nodes, at most the rollout's concurrency at once per node, while
    /// renewing the lease. Under the stop policy no task starts after one failed.
    private func run(
        _ tasks: [Catalog.RolloutTask], of rollout: Catalog.RolloutRecord, migrations: [TenantMigration],
        expected: ExpectedSchemas
    ) async -> [Catalog.TaskOutcome] {
        var byNode: [String: [Catalog.RolloutTask]] = [:]
        var outcomes: [Catalog.TaskOutcome] = []
        for task in tasks {
            if task.namespace.isEmpty {
                outcomes.append(.init(databaseID: task.databaseID, version: nil, error: nil, drift: nil, gone: true))
            } else if let node = task.node {
                byNode[node.id, default: []].append(task)
            } else {
                outcomes.append(
                    .init(
                        databaseID: task.databaseID, version: nil,
                        error: "the database has no primary node yet; register a node in its group's primary location",
                        drift: nil))
            }
        }
        let stop = Flag()
        let stopOnFailure = !rollout.continueOnError
        let nodes = self.nodes
        let catalog = self.catalog
        let owner = instanceID
        let sent: [Catalog.TaskOutcome] = await withTaskGroup(of: [Catalog.TaskOutcome].self) { group in
            // The lease is renewed while the page runs (its tasks may take longer than the lease).
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Self.rolloutLeaseMs / 3))
                    if Task.isCancelled { break }
                    _ = try? await catalog.renewRolloutLease(rollout.id, owner: owner, leaseMs: Self.rolloutLeaseMs)
                }
                return []
            }
            for (_, tasks) in byNode {
                let next = Counter()
                for _ in 0..<min(Int(rollout.concurrency), tasks.count) {
                    group.addTask {
                        var done: [Catalog.TaskOutcome] = []
                        while !Task.isCancelled, !stop.isSet {
                            let index = next.take()
                            guard index < tasks.count else { break }
                            let outcome = await Self.migrate(
                                tasks[index], migrations: migrations, upTo: rollout.targetVersion,
                                expected: expected, nodes: nodes)
                            if outcome.error != nil, stopOnFailure { stop.set() }
                            done.append(outcome)
                        }
                        return done
                    }
                }
            }
            var collected: [Catalog.TaskOutcome] = []
            var workers = byNode.values.reduce(0) { $0 + min(Int(rollout.concurrency), $1.count) }
            while workers > 0, let batch = await group.next() {
                // The lease renewer returns only when cancelled, so every batch before that is a worker's.
                collected += batch
                workers -= 1
            }
            group.cancelAll()
            return collected
        }
        return outcomes + sent
    }

    private static func migrate(
        _ task: Catalog.RolloutTask, migrations: [TenantMigration], upTo target: Int64, expected: ExpectedSchemas,
        nodes: NodeClient
    ) async -> Catalog.TaskOutcome {
        guard let node = task.node else {
            return .init(databaseID: task.databaseID, version: nil, error: "no node", drift: nil)
        }
        switch await nodes.migrate(task.namespace, migrations: migrations, upTo: target, on: node) {
        case .migrated(let version, let schema):
            var drift: Platform.SchemaDrift?
            if let want = try? await expected.schema(at: version) {
                let difference = SchemaDrift(expected: want, actual: schema)
                if !difference.isEmpty {
                    drift = Platform.SchemaDrift(
                        missing: difference.missing, unexpected: difference.unexpected, changed: difference.changed)
                }
            }
            return .init(databaseID: task.databaseID, version: version, error: nil, drift: drift)
        case .failed(let version, let message):
            return .init(databaseID: task.databaseID, version: version, error: message, drift: nil)
        case .gone:
            return .init(databaseID: task.databaseID, version: nil, error: nil, drift: nil, gone: true)
        }
    }
}

/// What a group's migrations make at each version, computed once per version on an in-memory
/// database (off the cooperative pool).
final class ExpectedSchemas: Sendable {
    private let migrations: [TenantMigration]
    private let computed = Mutex<[Int64: [SchemaEntry]]>([:])

    init(migrations: [TenantMigration]) {
        self.migrations = migrations
    }

    func schema(at version: Int64) async throws -> [SchemaEntry] {
        if let known = computed.withLock({ $0[version] }) { return known }
        let prefix = Array(migrations.prefix(Int(max(0, min(version, Int64(migrations.count))))))
        let schema = try await BlockingExecutor.shared.run { try TenantMigrator.expectedSchema(of: prefix) }
        computed.withLock { $0[version] = schema }
        return schema
    }
}

/// A flag workers share: set once, read by all.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// The next index for workers sharing a list.
final class Counter: Sendable {
    private let value = Mutex(0)
    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
