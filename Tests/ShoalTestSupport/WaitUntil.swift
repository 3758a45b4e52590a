/// Waits until `condition` holds, asking it every `interval`; throws, naming `what`, if it still
/// does not after `limit`. Only for conditions with no event to wait on: another process, state
/// behind HTTP, something a timer in the code under test moves (a heartbeat, a retry loop).
/// Anything the process under test can signal is awaited on that signal instead.
public func waitUntil(
    _ what: String, limit: Duration = .seconds(30), every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestSupportError("\(what) did not happen within \(limit)") }
        try await Task.sleep(for: interval)
    }
}
