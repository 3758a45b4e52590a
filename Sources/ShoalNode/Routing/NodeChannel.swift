import HTTPTypes
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ShoalHTTP

/// The node's connections: Hummingbird's HTTP/1 under the node's `ConnectionLimits` (as the
/// server kit's `LimitedHTTP1Channel`), and Hrana over WebSocket when a connection's first request
/// asks for the upgrade (a later one is sent back to reconnect, by Hummingbird).
struct NodeChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value
    /// Decides an upgrade, on the connection's event loop.
    typealias ShouldUpgrade =
        @Sendable (HTTPRequest, any Channel, Logger) throws -> ShouldUpgradeResult<
            WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
        >

    let upgradable: HTTP1WebSocketUpgradeChannel
    let limits: ConnectionLimits

    /// The server for `Application(server:)`: messages up to `maxMessageBytes`, pinged every 30 s
    /// (a peer that stops answering is closed).
    static func server(
        _ limits: ConnectionLimits, maxMessageBytes: Int, shouldUpgrade: @escaping ShouldUpgrade
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            NodeChannel(
                upgradable: HTTP1WebSocketUpgradeChannel(
                    responder: responder,
                    configuration: .init(
                        http1: .init(idleTimeout: TimeAmount(limits.idleTimeout)),
                        ws: WebSocketServerConfiguration(
                            maxFrameSize: maxMessageBytes, autoPing: .enabled(timePeriod: .seconds(30)),
                            closeTimeout: .seconds(10), validateUTF8: true)),
                    shouldUpgrade: shouldUpgrade),
                limits: limits)
        }
    }

    /// Sets up the upgradable HTTP/1 pipeline, then adds the deadlines to it (an upgrade removes
    /// the header and body deadlines: `ConnectionLimits.removeRequestDeadlines`).
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        return upgradable.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try limits.addDeadlineHandlers(to: channel) { deadline in
                logger.debug("connection.closed.deadline", metadata: ["connection.deadline": "\(deadline.rawValue)"])
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await upgradable.handle(value: value, logger: logger)
    }
}
