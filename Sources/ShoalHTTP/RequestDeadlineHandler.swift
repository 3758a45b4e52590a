import NIOCore
import NIOHTTP1

/// Closes a server connection whose request head or body does not arrive in time (see
/// `ConnectionLimits` and `RequestDeadlines`). It sits right after NIO's HTTP/1 request decoder, so
/// it sees each head and end as soon as they are decoded; its `ByteWatcher`, at the front of the
/// pipeline, tells it when the first byte of a later request arrives.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let limits: ConnectionLimits
    private let onDeadline: @Sendable (ConnectionLimits.Deadline) -> Void
    private var deadlines = RequestDeadlines()
    private var timer: Scheduled<Void>?
    /// Set from `handlerAdded` to `handlerRemoved`, so that the byte watcher's reports can start a
    /// deadline.
    private var context: ChannelHandlerContext?

    init(limits: ConnectionLimits, onDeadline: @escaping @Sendable (ConnectionLimits.Deadline) -> Void) {
        self.limits = limits
        self.onDeadline = onDeadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { apply(deadlines.opened()) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        apply(deadlines.opened())
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head: apply(deadlines.headReceived())
        case .body: break
        case .end: apply(deadlines.requestEnded())
        }
        context.fireChannelRead(data)
    }

    /// Bytes arrived from the client (called by the byte watcher, on the channel's event loop).
    func bytesReceived() {
        apply(deadlines.bytesReceived())
    }

    private func apply(_ action: RequestDeadlines.Action) {
        switch action {
        case .keep:
            return
        case .stop:
            cancelTimer()
        case .start(let deadline):
            cancelTimer()
            guard let context else { return }
            let limit = deadline == .header ? limits.headerTimeout : limits.bodyTimeout
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limit)) {
                self.timer = nil
                self.onDeadline(deadline)
                context.close(promise: nil)
            }
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    /// Reports every read from the socket to its `RequestDeadlineHandler`, then passes it on
    /// unchanged; the first handler of the pipeline.
    final class ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        private let deadlines: RequestDeadlineHandler

        init(_ deadlines: RequestDeadlineHandler) {
            self.deadlines = deadlines
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            deadlines.bytesReceived()
            context.fireChannelRead(data)
        }
    }
}

@available(*, unavailable)
extension RequestDeadlineHandler: Sendable {}

@available(*, unavailable)
extension RequestDeadlineHandler.ByteWatcher: Sendable {}
