import Synchronization

/// Runs `work` in a task of its own and returns its value, or nil when `limit` passes first. The
/// loser is cancelled but not awaited, so this returns at the deadline even if the work is slow to
/// notice its cancellation. An error thrown by the work is rethrown; cancelling the calling task
/// ends the wait at once with `CancellationError`. The deadline is a `CancellableSleep`, freed as
/// soon as the work finishes.
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ work: @escaping @Sendable () async throws -> T
) async throws -> T? {
    let race = Race<T?>()
    let worker = Task {
        do {
            race.finish(.success(try await work()))
        } catch {
            race.finish(.failure(error))
        }
    }
    let timer = Task {
        if await CancellableSleep.sleep(for: limit) { race.finish(.success(nil)) }
    }
    defer {
        worker.cancel()
        timer.cancel()
    }
    return try await withTaskCancellationHandler {
        try await race.result().get()
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of several finishers wins: its result is handed to the one waiter, later ones are
/// dropped.
final class Race<Value: Sendable>: Sendable {
    private enum State {
        case open(waiter: CheckedContinuation<Result<Value, any Error>, Never>?)
        case finished(Result<Value, any Error>?)
    }

    private let state = Mutex<State>(.open(waiter: nil))

    /// Ends the race with `result`, unless it already ended.
    func finish(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<Value, any Error>, Never>? in
            guard case .open(let waiter) = state else { return nil }
            state = .finished(waiter == nil ? result : nil)
            return waiter
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the race's result (called once).
    func result() async -> Result<Value, any Error> {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, any Error>? in
                switch state {
                case .open:
                    state = .open(waiter: continuation)
                    return nil
                case .finished(let result):
                    state = .finished(nil)
                    return result
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
