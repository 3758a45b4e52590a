import Foundation

/// A non-`Sendable` resource (a SQLite connection) that several threads share by taking turns.
///
/// `@unchecked Sendable`: the value is only reached inside `withLock`, so one thread at a time uses
/// it, which is all a `Connection` asks for.
final class Guarded<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
