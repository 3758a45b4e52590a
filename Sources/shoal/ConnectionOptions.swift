import ArgumentParser
import ShoalHTTP

/// How long a server waits for its clients and how many it serves at once (`shoal node`,
/// `shoal control`); each option left out keeps the server's default.
struct ConnectionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The most connections served at once; more wait until one closes "
                + "(default 10000 for a node, 2000 for the control plane)."))
    var maxConnections: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds a client has to send a request's line and headers, however slowly it trickles them (default 10)."))
    var headerTimeoutSeconds: Int?

    @Option(help: "Seconds a client has to send a request's body once its headers are in (default 60).")
    var bodyTimeoutSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds a connection may sit with no request in progress before it is closed "
                + "(default 75; keep it above 60, the longest /sync long-poll)."))
    var idleTimeoutSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds a response may wait for a client that reads none of it before the connection is closed "
                + "(default 30)."))
    var writeStallTimeoutSeconds: Int?

    mutating func validate() throws {
        if let maxConnections, maxConnections <= 0 {
            throw ValidationError("--max-connections must be positive")
        }
        for (name, value) in [
            ("--header-timeout-seconds", headerTimeoutSeconds), ("--body-timeout-seconds", bodyTimeoutSeconds),
            ("--idle-timeout-seconds", idleTimeoutSeconds),
            ("--write-stall-timeout-seconds", writeStallTimeoutSeconds),
        ] {
            if let value, value <= 0 { throw ValidationError("\(name) must be a positive number of seconds") }
        }
    }

    /// `defaults` with the options given.
    func limits(_ defaults: ConnectionLimits) -> ConnectionLimits {
        var limits = defaults
        if let maxConnections { limits.maxConnections = maxConnections }
        if let headerTimeoutSeconds { limits.headerTimeout = .seconds(headerTimeoutSeconds) }
        if let bodyTimeoutSeconds { limits.bodyTimeout = .seconds(bodyTimeoutSeconds) }
        if let idleTimeoutSeconds { limits.idleTimeout = .seconds(idleTimeoutSeconds) }
        if let writeStallTimeoutSeconds { limits.writeStallTimeout = .seconds(writeStallTimeoutSeconds) }
        return limits
    }
}
