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
        try request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let count = send(socket, raw.baseAddress! + sent, raw.count - sent, 0)
                guard count > 0 else { throw BenchError("send failed") }
                sent += count
            }
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = buffer.firstRange(of: separator)?.upperBound
            if headerEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 200") else { throw BenchError("the server answered \(head.prefix(40))") }
        guard
            let lengthLine = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }
            ),
            let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        else { throw BenchError("the response has no Content-Length") }
        while buffer.count < headerEnd! + length { try fill() }
        let body = Array(buffer[headerEnd!..<(headerEnd! + length)])
        buffer.removeFirst(headerEnd! + length)
        return body
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
