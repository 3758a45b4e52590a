import ServiceLifecycle

/// Work that runs for the life of a process (a loop that ends when its task is cancelled: a
/// node's upkeep, its link to the control plane, the control plane's retries) as a `Service` of
/// the process's `ServiceGroup`: a graceful shutdown (SIGTERM, SIGINT) cancels it in the group's
/// reverse order (`shoal node` and `shoal control` list their server last, so it stops first).
public struct UntilShutdown: Service, CustomStringConvertible {
    /// What the work is, for the group's logs.
    public let description: String
    let work: @Sendable () async -> Void

    /// A service named `name` that runs `work` until a graceful shutdown cancels it.
    public init(_ name: String, _ work: @escaping @Sendable () async -> Void) {
        description = name
        self.work = work
    }

    /// Runs the work; returns once it has ended.
    public func run() async {
        await cancelWhenGracefulShutdown { await work() }
    }
}
