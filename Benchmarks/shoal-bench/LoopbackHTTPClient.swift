import Foundation
import Glibc

/// A minimal blocking HTTP/1.1 client over one keep-alive TCP connection to 127.0.0.1, so the
/// remote-read benchmark measures the server and the wire, not a client library.
final class LoopbackHTTPClient {
    private let socket: Int32
    private var buffer = [UInt8]()

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw BenchError("cannot create a socket") }
        var noDelay: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw BenchError("cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(socket) }

    /// Sends `body` to `path` (POST unless `method` says otherwise) and returns the response body
    /// (status must be 200).
    func post(
        _ path: String, body: [UInt8], headers: [String: String] = [:], method: String = "POST"
    ) throws
        -> [UInt8]
    {
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        var request = Array(
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(extra)Content-Length: \(body.count)\r\n\r\n".utf8)
        request += body
        try sendAll(request)
        let (head, headerEnd) = try readHead()
        guard head.hasPrefix("HTTP/1.1 200") else { throw BenchError("the server answered \(head.prefix(40))") }
        guard
            let lengthLine = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }
            ),
            let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        else { throw BenchError("the response has no Content-Length") }
        while buffer.count < headerEnd + length { try fill() }
        let body = Array(buffer[headerEnd..<(headerEnd + length)])
        buffer.removeFirst(headerEnd + length)
        return body
    }

    /// Upgrades the connection to a WebSocket offering `subprotocol` (101 expected); from then on
    /// only `sendText` and `receiveText` apply.
    func upgradeToWebSocket(_ path: String, subprotocol: String) throws {
        let request = Array(
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: \(subprotocol)\r\n\r\n"
                .utf8)
        try sendAll(request)
        let (head, headerEnd) = try readHead()
        guard head.hasPrefix("HTTP/1.1 101") else { throw BenchError("the upgrade was answered \(head.prefix(40))") }
        buffer.removeFirst(headerEnd)
    }

    /// Reads up to the end of a response head; returns it and where it ends in the buffer.
    private func readHead() throws -> (head: String, end: Int) {
        let separator: [UInt8] = [13, 10, 13, 10]
        while true {
            if let end = buffer.firstRange(of: separator)?.upperBound {
                return (String(decoding: buffer[..<end], as: UTF8.self), end)
            }
            try fill()
        }
    }

    /// Sends one text message (a single masked frame, as a client must).
    func sendText(_ text: String) throws {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
        try sendAll(frame)
    }

    /// The next text message from the server (single unmasked frames; pings are skipped).
    func receiveText() throws -> [UInt8] {
        while true {
            while buffer.count < 2 { try fill() }
            let opcode = buffer[0] & 0x0F
            var length = Int(buffer[1] & 0x7F)
            var offset = 2
            if length == 126 {
                while buffer.count < 4 { try fill() }
                length = Int(buffer[2]) << 8 | Int(buffer[3])
                offset = 4
            } else if length == 127 {
                while buffer.count < 10 { try fill() }
                length = (2..<10).reduce(0) { $0 << 8 | Int(buffer[$1]) }
                offset = 10
            }
            while buffer.count < offset + length { try fill() }
            let payload = Array(buffer[offset..<(offset + length)])
            buffer.removeFirst(offset + length)
            switch opcode {
            case 0x1: return payload
            case 0x8: throw BenchError("the server closed the WebSocket")
            default: continue
            }
        }
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let count = send(socket, raw.baseAddress! + sent, raw.count - sent, 0)
                guard count > 0 else { throw BenchError("send failed") }
                sent += count
            }
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw BenchError("the connection closed") }
        buffer += chunk[0..<count]
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
