import Logging
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

extension ServiceGroupConfiguration {
    /// How long a graceful shutdown may take before the group cancels what is still running (open
    /// long-polls and streams included): a stuck request never keeps a stopping process alive.
    public static let shoalGracefulShutdownLimit: Duration = .seconds(30)

    /// The group of `shoal node`, `shoal control` and `shoal dev`: SIGTERM and SIGINT start a
    /// graceful shutdown (services stop in reverse order), escalated to cancellation after
    /// `shoalGracefulShutdownLimit`.
    public static func shoal(services: [any Service], logger: Logger) -> ServiceGroupConfiguration {
        var configuration = ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        configuration.maximumGracefulShutdownDuration = shoalGracefulShutdownLimit
        return configuration
    }
}
