import ShoalModel
import ShoalSQLite

/// The one classifier of SQL before it runs (nothing runs): whether a statement may write, by
/// SQLite's own read-only flag of each statement prepared on a connection, and whether a Hrana
/// request on a replica must run on the primary. The primary's executor and the replica's
/// forwarding both ask it.
enum SQLClassifier {

    /// Whether a request must run on the primary: it writes, controls a transaction, or cannot be
    /// prepared here (the primary's answer is the authoritative one).
    static func mustForward(_ request: Hrana.StreamRequest, stored: [Int32: String], reader: Connection) -> Bool {
        func sql(_ text: String?, _ id: Int32?) -> String? { text ?? id.flatMap { stored[$0] } }
        switch request {
        case .execute(let statement):
            return writes(sql(statement.sql, statement.sqlID), reader: reader, single: true)
        case .batch(let batch):
            return batch.steps.contains { step in
                if let condition = step.condition, mentionsAutocommit(condition) { return true }
                return writes(sql(step.statement.sql, step.statement.sqlID), reader: reader, single: true)
            }
        case .sequence(let text, let id):
            return writes(sql(text, id), reader: reader, single: false)
        case .describe(let text, let id):
            guard let text = sql(text, id) else { return false }
            return (try? reader.prepareFirst(text)) == nil
        case .storeSQL, .closeSQL, .getAutocommit, .close:
            return false
        }
    }

    static func mentionsAutocommit(_ condition: Hrana.Condition) -> Bool {
        switch condition {
        case .isAutocommit: true
        case .ok, .error: false
        case .not(let inner): mentionsAutocommit(inner)
        case .and(let all), .or(let all): all.contains(where: mentionsAutocommit)
        }
    }

    /// Whether SQL writes (by SQLite's read-only flag of each prepared statement), controls a
    /// transaction, or does not prepare on the replica.
    static func writes(_ sql: String?, reader: Connection, single: Bool) -> Bool {
        guard let sql else { return false }
        return mayWrite(sql, on: reader, single: single, transactionControl: .counts)
    }

    /// What a statement that opens or ends a transaction counts as when classifying.
    enum TransactionControl {
        /// Every one counts as writing (a replica forwards them: the transaction lives on the primary).
        case counts
        /// Only `BEGIN IMMEDIATE` and `BEGIN EXCLUSIVE` write (on the primary they take the lock).
        case countsWhenImmediate
    }

    /// The one classifier of SQL before it runs (nothing runs): whether it may write, by SQLite's
    /// own read-only flag of each statement prepared on `connection`, or `hiddenWrite` (the
    /// sandbox saw a statement write behind SQLite's back). SQL that does not prepare counts as
    /// writing. With `single`, only the first statement counts.
    static func mayWrite(
        _ sql: String, on connection: Connection, single: Bool, transactionControl: TransactionControl,
        hiddenWrite: () -> Bool = { false }
    ) -> Bool {
        var remaining = sql
        while true {
            switch transactionControl {
            case .counts:
                if controlsTransaction(remaining) { return true }
            case .countsWhenImmediate:
                // A SELECT never writes; here one that does not prepare fails when it runs anyway.
                // (A replica prepares it: one that does not prepare there goes to the primary.)
                switch firstWord(remaining).uppercased() {
                case "SELECT" where single:
                    return false
                case "BEGIN":
                    let words = remaining.uppercased().split(whereSeparator: { !$0.isLetter }).prefix(2)
                    if words.contains("IMMEDIATE") || words.contains("EXCLUSIVE") { return true }
                default:
                    break
                }
            }
            let prepared: Statement?
            do {
                prepared = try connection.prepareFirst(remaining)
            } catch {
                _ = hiddenWrite()
                return true
            }
            guard let statement = prepared else { return false }
            defer { statement.finalize() }
            if hiddenWrite() || !statement.isReadOnly { return true }
            if single { return false }
            remaining = statement.tail
        }
    }

    /// `BEGIN`, `COMMIT`, `END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE` (SQLite calls them read-only,
    /// but they open or end the transaction that later statements run in).
    static func controlsTransaction(_ sql: String) -> Bool {
        let word = firstWord(sql).uppercased()
        return ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"].contains(word)
    }

    /// The first keyword, past whitespace and comments.
    static func firstWord(_ sql: String) -> Substring {
        var rest = Substring(sql)
        while true {
            rest = rest.drop(while: { $0.isWhitespace || $0 == ";" })
            if rest.hasPrefix("--") {
                rest = rest.drop(while: { $0 != "\n" })
            } else if rest.hasPrefix("/*") {
                guard let end = rest.range(of: "*/") else { return "" }
                rest = rest[end.upperBound...]
            } else {
                return rest.prefix(while: { $0.isLetter })
            }
        }
    }
}
