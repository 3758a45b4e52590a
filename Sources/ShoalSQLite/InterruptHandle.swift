internal import CSQLite
import Synchronization

/// The handle an `InterruptHandle` may interrupt, cleared when the connection closes.
final class InterruptState: Sendable {
    // `sqlite3_interrupt` is safe from any thread while the handle is open; the mutex makes
    // "open" and "interrupt" atomic with respect to `close()`, which clears the handle first.
    private let handle: Mutex<UnsafeSendableHandle?>

    init(_ handle: OpaquePointer) {
        self.handle = Mutex(UnsafeSendableHandle(pointer: handle))
    }

    func interrupt() {
        handle.withLock { handle in
            if let handle { sqlite3_interrupt(handle.pointer) }
        }
    }

    func invalidate() {
        handle.withLock { $0 = nil }
    }
}

/// A `sqlite3*` carried across threads only for `sqlite3_interrupt`, which SQLite documents as safe
/// to call from any thread while the connection is open; `InterruptState` guarantees that.
struct UnsafeSendableHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Interrupts a connection's running statement from any thread. Does nothing once it is closed.
public struct InterruptHandle: Sendable {
    let state: InterruptState

    /// Makes the statement now running on the connection fail with `ResultCode.interrupt`.
    public func interrupt() {
        state.interrupt()
    }
}

extension Connection {
    /// A handle that other threads may use to interrupt this connection.
    public var interruptHandle: InterruptHandle {
        InterruptHandle(state: interruptState)
    }

    /// Interrupts the statement now running on this connection (from the thread that owns it, e.g.
    /// inside a callback). Other threads use `interruptHandle`.
    public func interrupt() {
        interruptState.interrupt()
    }
}
