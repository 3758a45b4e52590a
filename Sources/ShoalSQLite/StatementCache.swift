/// A small LRU cache of prepared statements keyed by SQL text, owned by one connection.
struct StatementCache {
    private struct Entry {
        let statement: Statement
        var lastUse: UInt64
    }

    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func statement(for sql: String) -> Statement? {
        guard var entry = entries[sql], !entry.statement.isFinalized else { return nil }
        clock &+= 1
        entry.lastUse = clock
        entries[sql] = entry
        return entry.statement
    }

    mutating func insert(_ statement: Statement, for sql: String) {
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries[oldest.key] = nil
        }
        clock &+= 1
        entries[sql] = Entry(statement: statement, lastUse: clock)
    }

    mutating func removeAll() {
        entries.removeAll()
    }

    var count: Int { entries.count }
}
