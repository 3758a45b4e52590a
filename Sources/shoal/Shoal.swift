import ArgumentParser

/// `shoal`: the one executable.
@main
struct Shoal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "Shoal: thousands of SQLite databases, one per tenant, replicated into your app.",
        subcommands: [
            DevCommand.self, ControlCommand.self, NodeCommand.self, AuthCommand.self, OrgCommand.self,
            LocationCommand.self, GroupCommand.self, DatabaseCommand.self, MigrateCommand.self, DemoCommand.self,
        ]
    )
}
