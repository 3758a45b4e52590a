/// Hrana (libSQL's SQL over HTTP) request and response shapes, versions 1 to 3, JSON encoding.
/// Decoders treat explicit nulls as absent (the Rust client sends them); encoders write the keys the
/// Rust client requires even when null.
public enum Hrana {
    /// One statement.
    public struct Statement: Sendable, Decodable, Equatable {
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

        /// Decodes a statement; nulls count as absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            sql = try container.decodeIfPresent(String.self, forKey: .sql)
            sqlID = try container.decodeIfPresent(Int32.self, forKey: .sqlID)
            arguments = try container.decodeIfPresent([HranaValue].self, forKey: .arguments) ?? []
            namedArguments = try container.decodeIfPresent([NamedArgument].self, forKey: .namedArguments) ?? []
            wantRows = try container.decodeIfPresent(Bool.self, forKey: .wantRows) ?? true
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
    public struct Batch: Sendable, Decodable, Equatable {
        /// The steps.
        public var steps: [Step]
    }

    /// One batch step.
    public struct Step: Sendable, Decodable, Equatable {
        /// When to run it (always if nil).
        public var condition: Condition?
        /// What to run.
        public var statement: Statement

        enum CodingKeys: String, CodingKey {
            case condition
            case statement = "stmt"
        }
    }

    /// A batch step condition.
    public indirect enum Condition: Sendable, Decodable, Equatable {
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
    }

    /// A result column.
    public struct Column: Sendable, Encodable, Equatable {
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

        /// Encodes both keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(declaredType, forKey: .declaredType)
        }
    }

    /// The result of one statement.
    public struct StatementResult: Sendable, Encodable, Equatable {
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

        /// Creates a statement result.
        public init(
            columns: [Column], rows: [[HranaValue]], affectedRowCount: Int, lastInsertRowID: Int64?,
            rowsRead: Int = 0, rowsWritten: Int = 0, queryDurationMilliseconds: Double = 0
        ) {
            self.columns = columns
            self.rows = rows
            self.affectedRowCount = affectedRowCount
            self.lastInsertRowID = lastInsertRowID
            self.rowsRead = rowsRead
            self.rowsWritten = rowsWritten
            self.queryDurationMilliseconds = queryDurationMilliseconds
        }

        enum CodingKeys: String, CodingKey {
            case columns = "cols"
            case rows
            case affectedRowCount = "affected_row_count"
            case lastInsertRowID = "last_insert_rowid"
            case rowsRead = "rows_read"
            case rowsWritten = "rows_written"
            case queryDurationMilliseconds = "query_duration_ms"
        }

        /// Encodes every key; `last_insert_rowid` as a string or null.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(columns, forKey: .columns)
            try container.encode(rows, forKey: .rows)
            try container.encode(affectedRowCount, forKey: .affectedRowCount)
            try container.encode(lastInsertRowID.map { String($0) }, forKey: .lastInsertRowID)
            try container.encode(rowsRead, forKey: .rowsRead)
            try container.encode(rowsWritten, forKey: .rowsWritten)
            try container.encode(queryDurationMilliseconds, forKey: .queryDurationMilliseconds)
        }
    }

    /// An error: a message and a string code (always present).
    public struct Failure: Error, Sendable, Codable, Equatable {
        /// What happened.
        public var message: String
        /// A machine-readable code (`SQLITE_CONSTRAINT`, `ARGS_INVALID`, ...).
        public var code: String

        /// Creates an error.
        public init(message: String, code: String) {
            self.message = message
            self.code = code
        }
    }

    /// The result of a batch: one slot per step in both arrays (null for skipped steps).
    public struct BatchResult: Sendable, Encodable, Equatable {
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

        /// Encodes both arrays with explicit nulls.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(stepResults, forKey: .stepResults)
            try container.encode(stepErrors, forKey: .stepErrors)
        }
    }

    /// What `describe` tells about a statement.
    public struct DescribeResult: Sendable, Encodable, Equatable {
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

        private struct Parameter: Encodable {
            let name: String?
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
            }
            enum CodingKeys: String, CodingKey { case name }
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
