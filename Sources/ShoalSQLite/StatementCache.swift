/// A small LRU cache of prepared statements keyed by SQL text, owned by one connection.
struct StatementCache {
    /// A cached statement and when it was last used; a class, so a hit updates it in place.
    private final class Entry {
        let statement: Statement
        var lastUse: UInt64

        init(statement: Statement, lastUse: UInt64) {
            self.statement = statement
            self.lastUse = lastUse
        }
    }

    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The statement cached for `sql`, marked as just used; nil if absent or finalized.
    mutating func statement(for sql: String) -> Statement? {
        guard let entry = entries[sql], !entry.statement.isFinalized else { return nil }
        clock &+= 1
        entry.lastUse = clock
        return entry.statement
    }

    /// Caches a statement, evicting the least recently used one when full.
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
