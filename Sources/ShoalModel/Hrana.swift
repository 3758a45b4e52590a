/// Hrana (libSQL's SQL over HTTP) request and response shapes, versions 1 to 3, JSON encoding.
///
/// Every type is `Codable` both ways: a server decodes requests and encodes responses, a client
/// encodes requests and decodes responses. Decoders treat explicit nulls as absent (the Rust client
/// sends them) and ignore keys they do not know; response decoders accept what older servers and
/// sqld send (integers as strings or numbers, statistics missing). Encoders write the keys the Rust
/// client requires even when null.
public enum Hrana {
    /// One statement.
    public struct Statement: Sendable, Codable, Equatable {
        /// The SQL text, or nil when `sqlID` names stored SQL.
        public var sql: String?
        /// A stored SQL id (`store_sql`).
        public var sqlID: Int32?
        /// Positional arguments.
        public var arguments: [HranaValue]
        /// Named arguments, names with or without their prefix.
        public var namedArguments: [NamedArgument]
        /// Whether rows are returned (default true).
        public var wantRows: Bool

        enum CodingKeys: String, CodingKey {
            case sql
            case sqlID = "sql_id"
            case arguments = "args"
            case namedArguments = "named_args"
            case wantRows = "want_rows"
        }

        /// A statement with SQL text.
        public init(
            sql: String, arguments: [HranaValue] = [], namedArguments: [NamedArgument] = [], wantRows: Bool = true
        ) {
            self.sql = sql
            self.arguments = arguments
            self.namedArguments = namedArguments
            self.wantRows = wantRows
        }

        /// A statement that runs SQL stored on the stream under `sqlID` (`store_sql`).
        public init(
            sqlID: Int32, arguments: [HranaValue] = [], namedArguments: [NamedArgument] = [], wantRows: Bool = true
        ) {
            self.sqlID = sqlID
            self.arguments = arguments
            self.namedArguments = namedArguments
            self.wantRows = wantRows
        }

        /// Decodes a statement; nulls count as absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            sql = try container.decodeIfPresent(String.self, forKey: .sql)
            sqlID = try container.decodeIfPresent(Int32.self, forKey: .sqlID)
            arguments = try container.decodeIfPresent([HranaValue].self, forKey: .arguments) ?? []
            namedArguments = try container.decodeIfPresent([NamedArgument].self, forKey: .namedArguments) ?? []
            wantRows = try container.decodeIfPresent(Bool.self, forKey: .wantRows) ?? true
        }

        /// Encodes `sql` or `sql_id` (whichever is set), `args`, `named_args` and `want_rows`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(sql, forKey: .sql)
            try container.encodeIfPresent(sqlID, forKey: .sqlID)
            try container.encode(arguments, forKey: .arguments)
            try container.encode(namedArguments, forKey: .namedArguments)
            try container.encode(wantRows, forKey: .wantRows)
        }
    }

    /// A named argument.
    public struct NamedArgument: Sendable, Codable, Equatable {
        /// The parameter name (`:id`, `@id`, `$id` or `id`).
        public var name: String
        /// The value.
        public var value: HranaValue

        /// Creates a named argument.
        public init(name: String, value: HranaValue) {
            self.name = name
            self.value = value
        }
    }

    /// A batch: steps run in order, each under an optional condition.
    public struct Batch: Sendable, Codable, Equatable {
        /// The steps.
        public var steps: [Step]

        /// A batch of `steps`.
        public init(steps: [Step]) {
            self.steps = steps
        }
    }

    /// One batch step.
    public struct Step: Sendable, Codable, Equatable {
        /// When to run it (always if nil).
        public var condition: Condition?
        /// What to run.
        public var statement: Statement

        /// A step that runs `statement` when `condition` holds (always if nil); encoded without
        /// `condition` when it is nil.
        public init(condition: Condition? = nil, statement: Statement) {
            self.condition = condition
            self.statement = statement
        }

        enum CodingKeys: String, CodingKey {
            case condition
            case statement = "stmt"
        }
    }

    /// A batch step condition.
    public indirect enum Condition: Sendable, Codable, Equatable {
        /// Step `n` ran and succeeded.
        case ok(Int)
        /// Step `n` ran and failed.
        case error(Int)
        /// The condition is false.
        case not(Condition)
        /// All conditions hold.
        case and([Condition])
        /// Any condition holds.
        case or([Condition])
        /// The connection is in autocommit mode (Hrana 3).
        case isAutocommit

        enum CodingKeys: String, CodingKey {
            case type, step, cond, conds
        }

        /// Decodes a tagged condition.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "ok": self = .ok(try container.decode(Int.self, forKey: .step))
            case "error": self = .error(try container.decode(Int.self, forKey: .step))
            case "not": self = .not(try container.decode(Condition.self, forKey: .cond))
            case "and": self = .and(try container.decode([Condition].self, forKey: .conds))
            case "or": self = .or(try container.decode([Condition].self, forKey: .conds))
            case "is_autocommit": self = .isAutocommit
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown batch condition \(other)")
            }
        }

        /// Encodes a tagged condition: `type`, with `step`, `cond` or `conds` as the type needs.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .ok(let step):
                try container.encode("ok", forKey: .type)
                try container.encode(step, forKey: .step)
            case .error(let step):
                try container.encode("error", forKey: .type)
                try container.encode(step, forKey: .step)
            case .not(let condition):
                try container.encode("not", forKey: .type)
                try container.encode(condition, forKey: .cond)
            case .and(let conditions):
                try container.encode("and", forKey: .type)
                try container.encode(conditions, forKey: .conds)
            case .or(let conditions):
                try container.encode("or", forKey: .type)
                try container.encode(conditions, forKey: .conds)
            case .isAutocommit:
                try container.encode("is_autocommit", forKey: .type)
            }
        }
    }

    /// A result column.
    public struct Column: Sendable, Codable, Equatable {
        /// The column's name.
        public var name: String?
        /// Its declared type.
        public var declaredType: String?

        /// Creates a column description.
        public init(name: String?, declaredType: String?) {
            self.name = name
            self.declaredType = declaredType
        }

        enum CodingKeys: String, CodingKey {
            case name
            case declaredType = "decltype"
        }

        /// Decodes a column; `name` and `decltype` may each be null or absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            declaredType = try container.decodeIfPresent(String.self, forKey: .declaredType)
        }

        /// Encodes both keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(declaredType, forKey: .declaredType)
        }
    }

    /// The result of one statement.
    public struct StatementResult: Sendable, Codable, Equatable {
        /// Result columns.
        public var columns: [Column]
        /// Rows (empty unless rows were wanted).
        public var rows: [[HranaValue]]
        /// Rows changed by a write.
        public var affectedRowCount: Int
        /// The last inserted rowid.
        public var lastInsertRowID: Int64?
        /// Rows read, as SQLite counted them.
        public var rowsRead: Int
        /// Rows written.
        public var rowsWritten: Int
        /// How long the statement ran.
        public var queryDurationMilliseconds: Double
        /// The server's replication index after the statement (sqld sends it as a decimal string),
        /// for a later read to wait for; nil when the server did not say.
        public var replicationIndex: String?

        /// Creates a statement result.
        public init(
            columns: [Column], rows: [[HranaValue]], affectedRowCount: Int, lastInsertRowID: Int64?,
            rowsRead: Int = 0, rowsWritten: Int = 0, queryDurationMilliseconds: Double = 0,
            replicationIndex: String? = nil
        ) {
            self.columns = columns
            self.rows = rows
            self.affectedRowCount = affectedRowCount
            self.lastInsertRowID = lastInsertRowID
            self.rowsRead = rowsRead
            self.rowsWritten = rowsWritten
            self.queryDurationMilliseconds = queryDurationMilliseconds
            self.replicationIndex = replicationIndex
        }

        enum CodingKeys: String, CodingKey {
            case columns = "cols"
            case rows
            case affectedRowCount = "affected_row_count"
            case lastInsertRowID = "last_insert_rowid"
            case rowsRead = "rows_read"
            case rowsWritten = "rows_written"
            case queryDurationMilliseconds = "query_duration_ms"
            case replicationIndex = "replication_index"
        }

        /// Decodes a result as any libSQL server sends it: `last_insert_rowid` a string, a number or
        /// null; `rows_read`, `rows_written` and `query_duration_ms` 0 and `replication_index` nil
        /// when absent (older servers).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            columns = try container.decode([Column].self, forKey: .columns)
            rows = try container.decode([[HranaValue]].self, forKey: .rows)
            affectedRowCount = try container.decode(Int.self, forKey: .affectedRowCount)
            lastInsertRowID = try container.decodeIntegerIfPresent(forKey: .lastInsertRowID)
            rowsRead = try container.decodeIfPresent(Int.self, forKey: .rowsRead) ?? 0
            rowsWritten = try container.decodeIfPresent(Int.self, forKey: .rowsWritten) ?? 0
            queryDurationMilliseconds =
                try container.decodeIfPresent(Double.self, forKey: .queryDurationMilliseconds) ?? 0
            replicationIndex = try container.decodeIntegerTextIfPresent(forKey: .replicationIndex)
        }

        /// Encodes every key; `last_insert_rowid` as a string or null; `replication_index` (a
        /// string) only when it is set.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(columns, forKey: .columns)
            try container.encode(rows, forKey: .rows)
            try container.encode(affectedRowCount, forKey: .affectedRowCount)
            try container.encode(lastInsertRowID.map { String($0) }, forKey: .lastInsertRowID)
            try container.encode(rowsRead, forKey: .rowsRead)
            try container.encode(rowsWritten, forKey: .rowsWritten)
            try container.encode(queryDurationMilliseconds, forKey: .queryDurationMilliseconds)
            try container.encodeIfPresent(replicationIndex, forKey: .replicationIndex)
        }
    }

    /// An error: a message and a string code (always encoded).
    public struct Failure: Error, Sendable, Codable, Equatable {
        /// What happened.
        public var message: String
        /// A machine-readable code (`SQLITE_CONSTRAINT`, `ARGS_INVALID`, ...); empty when the server
        /// sent none (`Failure.unknownCode`).
        public var code: String

        /// The code of a decoded error whose server sent no code, or a null one: the empty string.
        public static let unknownCode = ""

        /// Creates an error.
        public init(message: String, code: String) {
            self.message = message
            self.code = code
        }

        enum CodingKeys: String, CodingKey {
            case message, code
        }

        /// Decodes an error; a missing or null `code` (some servers omit it) becomes `unknownCode`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            message = try container.decode(String.self, forKey: .message)
            code = try container.decodeIfPresent(String.self, forKey: .code) ?? Self.unknownCode
        }

        /// Encodes `message` and `code`, the code always (the Rust client requires it).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(code, forKey: .code)
        }
    }

    /// The result of a batch: one slot per step in both arrays (null for skipped steps).
    public struct BatchResult: Sendable, Codable, Equatable {
        /// Results of steps that succeeded.
        public var stepResults: [StatementResult?]
        /// Errors of steps that failed.
        public var stepErrors: [Failure?]

        /// Creates a batch result.
        public init(stepResults: [StatementResult?], stepErrors: [Failure?]) {
            self.stepResults = stepResults
            self.stepErrors = stepErrors
        }

        enum CodingKeys: String, CodingKey {
            case stepResults = "step_results"
            case stepErrors = "step_errors"
        }

        /// Decodes both arrays, nulls marking the steps without a result or an error.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            stepResults = try container.decode([StatementResult?].self, forKey: .stepResults)
            stepErrors = try container.decode([Failure?].self, forKey: .stepErrors)
        }

        /// Encodes both arrays with explicit nulls.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(stepResults, forKey: .stepResults)
            try container.encode(stepErrors, forKey: .stepErrors)
        }
    }

    /// What `describe` tells about a statement.
    public struct DescribeResult: Sendable, Codable, Equatable {
        /// Parameter names (nil for `?`), in index order.
        public var parameters: [String?]
        /// Result columns.
        public var columns: [Column]
        /// Whether it is an EXPLAIN.
        public var isExplain: Bool
        /// Whether it writes nothing.
        public var isReadOnly: Bool

        /// Creates a describe result.
        public init(parameters: [String?], columns: [Column], isExplain: Bool, isReadOnly: Bool) {
            self.parameters = parameters
            self.columns = columns
            self.isExplain = isExplain
            self.isReadOnly = isReadOnly
        }

        enum CodingKeys: String, CodingKey {
            case parameters = "params"
            case columns = "cols"
            case isExplain = "is_explain"
            case isReadOnly = "is_readonly"
        }

        private struct Parameter: Codable {
            let name: String?
            init(name: String?) { self.name = name }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decodeIfPresent(String.self, forKey: .name)
            }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
            }
            enum CodingKeys: String, CodingKey { case name }
        }

        /// Decodes all four keys; a parameter's `name` may be null or absent (`?`).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            parameters = try container.decode([Parameter].self, forKey: .parameters).map(\.name)
            columns = try container.decode([Column].self, forKey: .columns)
            isExplain = try container.decode(Bool.self, forKey: .isExplain)
            isReadOnly = try container.decode(Bool.self, forKey: .isReadOnly)
        }

        /// Encodes all four keys.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(parameters.map { Parameter(name: $0) }, forKey: .parameters)
            try container.encode(columns, forKey: .columns)
            try container.encode(isExplain, forKey: .isExplain)
            try container.encode(isReadOnly, forKey: .isReadOnly)
        }
    }
}

extension KeyedDecodingContainer {
    /// A 64-bit integer sent as a decimal string or a JSON number (servers differ); nil when absent
    /// or null.
    func decodeIntegerIfPresent(forKey key: Key) throws -> Int64? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        if let text = try? decode(String.self, forKey: key) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: self, debugDescription: "\(text.prefix(40)) is not a 64-bit integer")
            }
            return value
        }
        return try decode(Int64.self, forKey: key)
    }

    /// A non-negative integer sent as a decimal string or a JSON number, kept as its decimal text;
    /// nil when absent or null.
    func decodeIntegerTextIfPresent(forKey key: Key) throws -> String? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        if let text = try? decode(String.self, forKey: key) {
            guard UInt64(text) != nil else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: self, debugDescription: "\(text.prefix(40)) is not a non-negative integer")
            }
            return text
        }
        return String(try decode(UInt64.self, forKey: key))
    }
}
