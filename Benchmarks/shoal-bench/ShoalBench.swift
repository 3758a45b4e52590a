import ArgumentParser

/// `shoal-bench`: Shoal's benchmarks. Each prints one JSON object per line with its baseline.
@main
struct ShoalBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal-bench",
        abstract: "Shoal's benchmarks; each prints JSON lines with a baseline measured in the same run.",
        discussion: "Build in release mode: swift run -c release shoal-bench <benchmark>",
        subcommands: [
            LocalRead.self, ReplicaRead.self, Apply.self, RemoteRead.self, ClientRead.self, PoolBench.self,
            Provision.self, ReplicaLag.self, PoolChurn.self, ChurnNode.self, NoisyNeighbour.self, Migrate.self,
            Backup.self,
        ]
    )
}
