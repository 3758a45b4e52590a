import NIOCore
import NIOHTTP1

/// How long a server waits for a client, and how many clients it serves at once: the header, body
/// and idle timeouts and the connection cap of the node and the control plane.
///
/// The inbound side lives here, beside the outbound client, because both servers import ShoalHTTP
/// and neither may import the other; it needs only NIO, so ShoalClient stays free of Hummingbird.
/// Each server applies the idle timeout and the cap through Hummingbird and adds the deadlines with
/// `addDeadlineHandlers(to:onDeadline:)`.
public struct ConnectionLimits: Sendable, Equatable {
    /// Which deadline closed a connection.
    public enum Deadline: String, Sendable {
        /// The request head was not complete in time.
        case header
        /// The request body was not complete in time.
        case body
        /// The client read none of its response for too long (`writeStallTimeout`).
        case write
    }

    /// How long a request head (request line and headers) may take, counted from the connection's
    /// opening, or on a kept-alive connection from the first byte of the next request; a client
    /// that trickles its head is closed at this deadline however steadily it sends.
    public var headerTimeout: Duration
    /// How long a request body may take once its head is in.
    public var bodyTimeout: Duration
    /// How long a connection may sit with no request in progress (before its first request, between
    /// requests) before it is closed. Keep it longer than the longest wait the server itself holds
    /// open (the node's `/sync?wait_ms=` is capped at 60 s); a response being written is never idle.
    public var idleTimeout: Duration
    /// How long a response may wait for its client to read any of it (the connection's send
    /// buffers full) before the connection is closed; a client that reads, however slowly, resets it.
    public var writeStallTimeout: Duration
    /// The most connections served at once; past it new connections wait in the listen backlog
    /// (256) until one closes, and past the backlog the kernel refuses them.
    public var maxConnections: Int

    /// Limits of 10 s for a head, 60 s for a body (16 MiB then needs about 280 KB/s), 75 s idle
    /// (longer than the node's 60 s long-polls), 30 s for a response nobody reads, and
    /// `maxConnections`.
    public init(
        headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(60),
        idleTimeout: Duration = .seconds(75), writeStallTimeout: Duration = .seconds(30), maxConnections: Int
    ) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.writeStallTimeout = writeStallTimeout
        self.maxConnections = maxConnections
    }

    /// The node's defaults: the timeouts above and 10,000 connections.
    public static let node = ConnectionLimits(maxConnections: 10_000)
    /// The control plane's defaults: the timeouts above and 2,000 connections.
    public static let controlPlane = ConnectionLimits(maxConnections: 2_000)

    /// Adds the header, body and write-stall deadlines to `channel`, a server connection whose pipeline already
    /// holds NIO's HTTP/1 server handlers (`configureHTTPServerPipeline`). Call it on the channel's
    /// event loop, before the channel is active. `onDeadline` runs on that loop for each connection
    /// a deadline closes.
    public func addDeadlineHandlers(
        to channel: any Channel, onDeadline: @escaping @Sendable (Deadline) -> Void = { _ in }
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        // After the request decoder the handler sees each head and end as soon as it is decoded; at
        // the front its byte watcher sees the first byte of each later request.
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        let deadlines = RequestDeadlineHandler(limits: self, onDeadline: onDeadline)
        try pipeline.addHandler(deadlines, position: .after(decoder))
        try pipeline.addHandler(RequestDeadlineHandler.ByteWatcher(deadlines), position: .first)
        try pipeline.addHandler(WriteStallHandler(timeout: writeStallTimeout, onDeadline: onDeadline), position: .first)
    }

    /// Removes the header and body deadlines from a connection that stops speaking HTTP/1 (a
    /// WebSocket upgrade, while its upgrade request is handled), keeping the write-stall deadline.
    /// Call it on the channel's event loop.
    public static func removeRequestDeadlines(from channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        pipeline.removeHandler(
            context: try pipeline.context(handlerType: RequestDeadlineHandler.ByteWatcher.self), promise: nil)
        pipeline.removeHandler(context: try pipeline.context(handlerType: RequestDeadlineHandler.self), promise: nil)
    }
}
