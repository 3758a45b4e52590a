extension Hrana {
    /// A request on a stream.
    public enum StreamRequest: Sendable, Codable, Equatable {
        /// Run one statement.
        case execute(Statement)
        /// Run a batch.
        case batch(Batch)
        /// Run several `;`-separated statements, ignoring rows.
        case sequence(sql: String?, sqlID: Int32?)
        /// Describe a statement without running it.
        case describe(sql: String?, sqlID: Int32?)
        /// Store SQL text under an id for this stream.
        case storeSQL(id: Int32, sql: String)
        /// Forget stored SQL.
        case closeSQL(id: Int32)
        /// Ask whether the connection is in autocommit mode (Hrana 3).
        case getAutocommit
        /// Close the stream.
        case close

        enum CodingKeys: String, CodingKey {
            case type, stmt, batch, sql
            case sqlID = "sql_id"
        }

        /// Decodes a tagged request.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "execute": self = .execute(try container.decode(Statement.self, forKey: .stmt))
            case "batch": self = .batch(try container.decode(Batch.self, forKey: .batch))
            case "sequence":
                self = .sequence(
                    sql: try container.decodeIfPresent(String.self, forKey: .sql),
                    sqlID: try container.decodeIfPresent(Int32.self, forKey: .sqlID))
            case "describe":
                self = .describe(
                    sql: try container.decodeIfPresent(String.self, forKey: .sql),
                    sqlID: try container.decodeIfPresent(Int32.self, forKey: .sqlID))
            case "store_sql":
                self = .storeSQL(
                    id: try container.decode(Int32.self, forKey: .sqlID),
                    sql: try container.decode(String.self, forKey: .sql))
            case "close_sql": self = .closeSQL(id: try container.decode(Int32.self, forKey: .sqlID))
            case "get_autocommit": self = .getAutocommit
            case "close": self = .close
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown stream request type \(other)")
            }
        }

        /// Encodes a tagged request: `type`, with `stmt`, `batch`, `sql` or `sql_id` as the type needs
        /// (an unset `sql` or `sql_id` is left out).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .execute(let statement):
                try container.encode("execute", forKey: .type)
                try container.encode(statement, forKey: .stmt)
            case .batch(let batch):
                try container.encode("batch", forKey: .type)
                try container.encode(batch, forKey: .batch)
            case .sequence(let sql, let sqlID):
                try container.encode("sequence", forKey: .type)
                try container.encodeIfPresent(sql, forKey: .sql)
                try container.encodeIfPresent(sqlID, forKey: .sqlID)
            case .describe(let sql, let sqlID):
                try container.encode("describe", forKey: .type)
                try container.encodeIfPresent(sql, forKey: .sql)
                try container.encodeIfPresent(sqlID, forKey: .sqlID)
            case .storeSQL(let id, let sql):
                try container.encode("store_sql", forKey: .type)
                try container.encode(id, forKey: .sqlID)
                try container.encode(sql, forKey: .sql)
            case .closeSQL(let id):
                try container.encode("close_sql", forKey: .type)
                try container.encode(id, forKey: .sqlID)
            case .getAutocommit:
                try container.encode("get_autocommit", forKey: .type)
            case .close:
                try container.encode("close", forKey: .type)
            }
        }
    }

    /// The answer to a stream request.
    public enum StreamResponse: Sendable, Codable, Equatable {
        /// The statement's result.
        case execute(StatementResult)
        /// The batch's result.
        case batch(BatchResult)
        /// The sequence ran.
        case sequence
        /// The description.
        case describe(DescribeResult)
        /// Stored.
        case storeSQL
        /// Forgotten.
        case closeSQL
        /// Whether the connection is in autocommit mode.
        case getAutocommit(Bool)
        /// Closed.
        case close

        enum CodingKeys: String, CodingKey {
            case type, result
            case isAutocommit = "is_autocommit"
        }

        /// Decodes a tagged response; an unknown `type` is a `DecodingError.dataCorrupted`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "execute": self = .execute(try container.decode(StatementResult.self, forKey: .result))
            case "batch": self = .batch(try container.decode(BatchResult.self, forKey: .result))
            case "sequence": self = .sequence
            case "describe": self = .describe(try container.decode(DescribeResult.self, forKey: .result))
            case "store_sql": self = .storeSQL
            case "close_sql": self = .closeSQL
            case "get_autocommit": self = .getAutocommit(try container.decode(Bool.self, forKey: .isAutocommit))
            case "close": self = .close
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container,
                    debugDescription: "unknown stream response type \(other.prefix(40))")
            }
        }

        /// Encodes a tagged response.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .execute(let result):
                try container.encode("execute", forKey: .type)
                try container.encode(result, forKey: .result)
            case .batch(let result):
                try container.encode("batch", forKey: .type)
                try container.encode(result, forKey: .result)
            case .sequence: try container.encode("sequence", forKey: .type)
            case .describe(let result):
                try container.encode("describe", forKey: .type)
                try container.encode(result, forKey: .result)
            case .storeSQL: try container.encode("store_sql", forKey: .type)
            case .closeSQL: try container.encode("close_sql", forKey: .type)
            case .getAutocommit(let value):
                try container.encode("get_autocommit", forKey: .type)
                try container.encode(value, forKey: .isAutocommit)
            case .close: try container.encode("close", forKey: .type)
            }
        }
    }

    /// One entry of a pipeline response.
    public enum StreamResult: Sendable, Codable, Equatable {
        /// The request succeeded.
        case ok(StreamResponse)
        /// The request failed.
        case error(Failure)

        enum CodingKeys: String, CodingKey {
            case type, response, error
        }

        /// Decodes `{"type":"ok","response":…}` or `{"type":"error","error":…}`; any other `type` is
        /// a `DecodingError.dataCorrupted`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "ok": self = .ok(try container.decode(StreamResponse.self, forKey: .response))
            case "error": self = .error(try container.decode(Failure.self, forKey: .error))
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown stream result type \(other.prefix(40))")
            }
        }

        /// Encodes `{"type":"ok","response":…}` or `{"type":"error","error":…}`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .ok(let response):
                try container.encode("ok", forKey: .type)
                try container.encode(response, forKey: .response)
            case .error(let failure):
                try container.encode("error", forKey: .type)
                try container.encode(failure, forKey: .error)
            }
        }
    }

    /// `POST /v2|v3/pipeline` body.
    public struct PipelineRequest: Sendable, Codable, Equatable {
        /// The stream's baton, or nil to open a stream.
        public var baton: String?
        /// The requests, run in order.
        public var requests: [StreamRequest]

        /// A pipeline of `requests` on the stream `baton` names (a new stream if nil).
        public init(baton: String?, requests: [StreamRequest]) {
            self.baton = baton
            self.requests = requests
        }

        enum CodingKeys: String, CodingKey {
            case baton, requests
        }

        /// Decodes a pipeline; a null or absent baton opens a stream.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            baton = try container.decodeIfPresent(String.self, forKey: .baton)
            requests = try container.decode([StreamRequest].self, forKey: .requests)
        }

        /// Encodes `baton` (an explicit null when nil, as servers expect) and `requests`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(requests, forKey: .requests)
        }
    }

    /// `POST /v2|v3/pipeline` answer.
    public struct PipelineResponse: Sendable, Codable, Equatable {
        /// The baton for the next request, nil once the stream is closed.
        public var baton: String?
        /// Where to send the stream's next requests (always nil: any node that has it).
        public var baseURL: String?
        /// One result per request.
        public var results: [StreamResult]

        /// Creates a response.
        public init(baton: String?, baseURL: String? = nil, results: [StreamResult]) {
            self.baton = baton
            self.baseURL = baseURL
            self.results = results
        }

        enum CodingKeys: String, CodingKey {
            case baton
            case baseURL = "base_url"
            case results
        }

        /// Decodes a response; `baton` and `base_url` may be null or absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            baton = try container.decodeIfPresent(String.self, forKey: .baton)
            baseURL = try container.decodeIfPresent(String.self, forKey: .baseURL)
            results = try container.decode([StreamResult].self, forKey: .results)
        }

        /// Encodes all keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(baseURL, forKey: .baseURL)
            try container.encode(results, forKey: .results)
        }
    }

    /// `POST /v1/execute` body.
    public struct ExecuteRequest: Sendable, Codable, Equatable {
        /// The statement.
        public var stmt: Statement

        /// A request to run `statement`.
        public init(statement: Statement) {
            self.stmt = statement
        }
    }

    /// `POST /v1/batch` body.
    public struct BatchRequest: Sendable, Codable, Equatable {
        /// The batch.
        public var batch: Batch

        /// A request to run `batch`.
        public init(batch: Batch) {
            self.batch = batch
        }
    }

    /// `{"result": …}` for HTTP API v1 (decodable when `Result` is).
    public struct ResultEnvelope<Result: Encodable & Sendable>: Sendable, Encodable {
        /// The result.
        public var result: Result

        /// Wraps a result.
        public init(result: Result) {
            self.result = result
        }
    }
}

extension Hrana.ResultEnvelope: Decodable where Result: Decodable {}

extension Hrana.ResultEnvelope: Equatable where Result: Equatable {}

extension Hrana {
    /// `POST /v3/cursor` body.
    public struct CursorRequest: Sendable, Codable, Equatable {
        /// The stream's baton, or nil to open a stream.
        public var baton: String?
        /// The batch to run.
        public var batch: Batch

        /// A cursor over `batch` on the stream `baton` names (a new stream if nil).
        public init(baton: String?, batch: Batch) {
            self.baton = baton
            self.batch = batch
        }

        enum CodingKeys: String, CodingKey {
            case baton, batch
        }

        /// Decodes a cursor request; a null or absent baton opens a stream.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            baton = try container.decodeIfPresent(String.self, forKey: .baton)
            batch = try container.decode(Batch.self, forKey: .batch)
        }

        /// Encodes `baton` (an explicit null when nil) and `batch`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(batch, forKey: .batch)
        }
    }

    /// The first line of a cursor response.
    public struct CursorHeader: Sendable, Codable, Equatable {
        /// The baton for the next request.
        public var baton: String?
        /// Where to send the stream's next requests (Shoal always sends nil).
        public var baseURL: String?

        /// Creates a header.
        public init(baton: String?, baseURL: String? = nil) {
            self.baton = baton
            self.baseURL = baseURL
        }

        enum CodingKeys: String, CodingKey {
            case baton
            case baseURL = "base_url"
        }

        /// Decodes a header; both keys may be null or absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            baton = try container.decodeIfPresent(String.self, forKey: .baton)
            baseURL = try container.decodeIfPresent(String.self, forKey: .baseURL)
        }

        /// Encodes both keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(baseURL, forKey: .baseURL)
        }
    }

    /// One line of a cursor response after the header.
    public enum CursorEntry: Sendable, Codable, Equatable {
        /// A step starts, with its columns.
        case stepBegin(step: Int, columns: [Column])
        /// A row of the current step.
        case row([HranaValue])
        /// The current step ended.
        case stepEnd(affectedRowCount: Int, lastInsertRowID: Int64?)
        /// A step failed.
        case stepError(step: Int, error: Failure)
        /// The whole cursor failed (sqld sends this; Shoal never does).
        case error(Failure)
        /// The server's replication index after the batch, as decimal text (sqld sends this; Shoal
        /// never does).
        case replicationIndex(String?)

        enum CodingKeys: String, CodingKey {
            case type, step, cols, row, error
            case affectedRowCount = "affected_row_count"
            case lastInsertRowID = "last_insert_rowid"
            case replicationIndex = "replication_index"
        }

        /// Decodes a tagged entry; `last_insert_rowid` may be a string, a number or null (sqld sends
        /// a number); an unknown `type` is a `DecodingError.dataCorrupted`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "step_begin":
                self = .stepBegin(
                    step: try container.decode(Int.self, forKey: .step),
                    columns: try container.decode([Column].self, forKey: .cols))
            case "row": self = .row(try container.decode([HranaValue].self, forKey: .row))
            case "step_end":
                self = .stepEnd(
                    affectedRowCount: try container.decode(Int.self, forKey: .affectedRowCount),
                    lastInsertRowID: try container.decodeIntegerIfPresent(forKey: .lastInsertRowID))
            case "step_error":
                self = .stepError(
                    step: try container.decode(Int.self, forKey: .step),
                    error: try container.decode(Failure.self, forKey: .error))
            case "error": self = .error(try container.decode(Failure.self, forKey: .error))
            case "replication_index":
                self = .replicationIndex(try container.decodeIntegerTextIfPresent(forKey: .replicationIndex))
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown cursor entry type \(other.prefix(40))")
            }
        }

        /// Encodes a tagged entry.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .stepBegin(let step, let columns):
                try container.encode("step_begin", forKey: .type)
                try container.encode(step, forKey: .step)
                try container.encode(columns, forKey: .cols)
            case .row(let row):
                try container.encode("row", forKey: .type)
                try container.encode(row, forKey: .row)
            case .stepEnd(let affected, let rowID):
                try container.encode("step_end", forKey: .type)
                try container.encode(affected, forKey: .affectedRowCount)
                try container.encode(rowID.map { String($0) }, forKey: .lastInsertRowID)
            case .stepError(let step, let error):
                try container.encode("step_error", forKey: .type)
                try container.encode(step, forKey: .step)
                try container.encode(error, forKey: .error)
            case .error(let error):
                try container.encode("error", forKey: .type)
                try container.encode(error, forKey: .error)
            case .replicationIndex(let index):
                try container.encode("replication_index", forKey: .type)
                try container.encode(index, forKey: .replicationIndex)
            }
        }
    }
}
