import Testing

@testable import ShoalSQLite

/// Expects `body` to throw a `SQLiteError` whose code matches `code` (a primary code matches its
/// extended codes) and returns it.
@discardableResult
func expectError<R>(
    _ code: ResultCode, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> SQLiteError? {
    do {
        _ = try body()
        Issue.record("expected SQLite error \(code.rawValue) but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as SQLiteError {
        #expect(code ~= error.code, "got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a SQLiteError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
