import NIOCore

/// Closes a server connection whose client stops reading its response: when the channel stays
/// unwritable (NIO's outbound buffer above its high-water mark, the socket's send buffer full) for
/// `ConnectionLimits.writeStallTimeout`. A client that reads slowly but steadily keeps the channel
/// turning writable again and is never closed; one that stops reading would otherwise hold its
/// connection, and whatever the response's writer holds, for as long as the peer's TCP stack
/// keeps the connection alive.
final class WriteStallHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: Duration
    private let onDeadline: @Sendable (ConnectionLimits.Deadline) -> Void
    private var timer: Scheduled<Void>?

    init(timeout: Duration, onDeadline: @escaping @Sendable (ConnectionLimits.Deadline) -> Void) {
        self.timeout = timeout
        self.onDeadline = onDeadline
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            cancelTimer()
        } else if timer == nil {
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.timer = nil
                guard !context.channel.isWritable else { return }
                self.onDeadline(.write)
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }
}

@available(*, unavailable)
extension WriteStallHandler: Sendable {}
