import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A raw TCP connection to a port on 127.0.0.1, for tests that act as a slow or stuck HTTP client
/// would; closed when the value goes. Its waits block a dispatch thread, never the cooperative pool
/// the servers under test answer on.
public final class RawConnection: Sendable {
    /// A moment on the continuous clock.
    public typealias Instant = ContinuousClock.Instant

    let descriptor: Int32

    /// Connects to `port` (the kernel completes the handshake even while the server does not accept).
    /// A `receiveBuffer` (bytes) fixes the socket's receive buffer, so that a client that stops
    /// reading stalls the server's writes after little data.
    public init(port: Int, receiveBuffer: Int? = nil) throws {
        #if canImport(Glibc)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw RawConnectionError("socket() failed: errno \(errno)") }
        #if !canImport(Glibc)
            var on: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(descriptor)
            throw RawConnectionError("cannot connect to 127.0.0.1:\(port): errno \(errno)")
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Sends `text`; false once the server has closed the connection.
    public func send(_ text: String) -> Bool {
        Self.sendAll(descriptor, Array(text.utf8))
    }

    /// Closes both directions, as a client that goes away does.
    public func hangUp() {
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// When the server closed the connection (end of stream or reset), reading and dropping what it
    /// sends until then; nil if it is still open after `timeout`.
    public func closedByServer(within timeout: Duration) async -> Instant? {
        let descriptor = self.descriptor
        return await Self.offPool {
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                guard Self.waitReadable(descriptor, for: deadline - .now) else { continue }
                let count = recv(descriptor, &buffer, buffer.count, 0)
                if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) { return .now }
            }
            return nil
        }
    }

    /// The head of the next response (status line and headers), or nil if none came in `timeout`.
    public func responseHead(within timeout: Duration) async -> String? {
        guard let received = await receive(until: "\r\n\r\n", within: timeout),
            let end = received.firstRange(of: Array("\r\n\r\n".utf8))
        else { return nil }
        return String(decoding: received[..<end.lowerBound], as: UTF8.self)
    }

    /// The bytes received until they contain `marker` (all of them: what arrived with the marker too),
    /// or nil if it did not come in `timeout` or the server closed first.
    public func receive(until marker: String, within timeout: Duration) async -> [UInt8]? {
        let descriptor = self.descriptor
        let marker = Array(marker.utf8)
        return await Self.offPool {
            let deadline = ContinuousClock.now + timeout
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                guard Self.waitReadable(descriptor, for: deadline - .now) else { continue }
                let count = recv(descriptor, &buffer, buffer.count, 0)
                guard count > 0 else { return nil }
                received += buffer[0..<count]
                if received.firstRange(of: marker) != nil { return received }
            }
            return nil
        }
    }

    /// Sends `prefix` one byte every `interval`, then `a` after `a` (a header that never ends),
    /// until the server closes the connection; when it did, or nil if it is still open after
    /// `timeout`.
    public func trickle(_ prefix: String, every interval: Duration, within timeout: Duration) async -> Instant? {
        let descriptor = self.descriptor
        let bytes = Array(prefix.utf8)
        return await Self.offPool {
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 4096)
            var index = 0
            while ContinuousClock.now < deadline {
                let byte = index < bytes.count ? bytes[index] : UInt8(ascii: "a")
                index += 1
                guard Self.sendAll(descriptor, [byte]) else { return .now }
                if Self.waitReadable(descriptor, for: interval) {
                    let count = recv(descriptor, &buffer, buffer.count, 0)
                    if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) { return .now }
                }
            }
            return nil
        }
    }

    private static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                    Glibc.send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                #else
                    Darwin.send(descriptor, raw.baseAddress! + sent, raw.count - sent, 0)
                #endif
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Whether `descriptor` has something to read (data, end of stream or an error) within `duration`.
    private static func waitReadable(_ descriptor: Int32, for duration: Duration) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(1, min(duration / .milliseconds(1), 60_000)))
        return poll(&entry, 1, milliseconds) > 0
    }

    /// Runs blocking `body` on a dispatch thread.
    private static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }
}

/// A socket call that failed, with errno.
public struct RawConnectionError: Error, CustomStringConvertible {
    /// What failed.
    public let description: String
    init(_ description: String) { self.description = description }
}
