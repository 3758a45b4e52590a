import Foundation
import ShoalHTTP
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP listener on a loopback port that never answers HTTP; optionally it accepts one connection
/// and sends a head and part of a body, then goes quiet.
final class QuietServer: @unchecked Sendable {
    let socket: Int32
    let port: Int
    private var accepted: Int32 = -1

    init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.socket = socket
        guard socket >= 0 else { throw ClientTestError("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(socket, 16) == 0 else { throw ClientTestError("bind/listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts one connection (on a dispatch thread) and sends `bytes`, then keeps it open.
    func acceptAndSend(_ bytes: String) {
        DispatchQueue.global().async { [self] in
            let connection = accept(socket, nil, nil)
            guard connection >= 0 else { return }
            accepted = connection
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = read(connection, &buffer, buffer.count)
            _ = bytes.utf8CString.withUnsafeBufferPointer { write(connection, $0.baseAddress, $0.count - 1) }
        }
    }

    /// Accepts one connection (on a dispatch thread), reads the request and keeps the connection
    /// open without answering; returns once the request has arrived.
    func acceptRequest() async {
        await withCheckedContinuation { (arrived: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [self] in
                let connection = accept(socket, nil, nil)
                if connection >= 0 {
                    accepted = connection
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    _ = read(connection, &buffer, buffer.count)
                }
                arrived.resume()
            }
        }
    }

    deinit {
        if accepted >= 0 { close(accepted) }
        close(socket)
    }
}

struct ClientTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite("OutboundHTTP deadlines", .timeLimit(.minutes(2)))
struct OutboundHTTPTests {
    /// Calls the server and expects `.timedOut`.
    func expectTimeout(_ server: QuietServer, within timeout: Duration) async {
        let call = HTTPCall("GET", URL(string: "http://127.0.0.1:\(server.port)/")!, timeout: timeout)
        await #expect {
            _ = try await OutboundHTTP.send(call)
        } throws: { error in
            (error as? HTTPCallError)?.kind == .timedOut
        }
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        await expectTimeout(try QuietServer(), within: .milliseconds(300))
    }

    @Test func aBodyThatStopsHalfwayTimesOut() async throws {
        let server = try QuietServer()
        server.acceptAndSend("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf of it")
        await expectTimeout(server, within: .milliseconds(500))
    }

    @Test func aCancelledCallEndsWithCancellation() async throws {
        let server = try QuietServer()
        let call = HTTPCall("GET", URL(string: "http://127.0.0.1:\(server.port)/")!, timeout: .seconds(3600))
        let task = Task { try await OutboundHTTP.send(call) }
        // Cancelled once the request is in flight: the server has read it.
        await server.acceptRequest()
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        withExtendedLifetime(server) {}
    }
}
