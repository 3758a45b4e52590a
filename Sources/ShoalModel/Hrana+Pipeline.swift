extension Hrana {
    /// A request on a stream.
    public enum StreamRequest: Sendable, Decodable, Equatable {
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
    }

    /// The answer to a stream request.
    public enum StreamResponse: Sendable, Encodable, Equatable {
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
    public enum StreamResult: Sendable, Encodable, Equatable {
        /// The request succeeded.
        case ok(StreamResponse)
        /// The request failed.
        case error(Failure)

        enum CodingKeys: String, CodingKey {
            case type, response, error
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
    public struct PipelineRequest: Sendable, Decodable, Equatable {
        /// The stream's baton, or nil to open a stream.
        public var baton: String?
        /// The requests, run in order.
        public var requests: [StreamRequest]
    }

    /// `POST /v2|v3/pipeline` answer.
    public struct PipelineResponse: Sendable, Encodable, Equatable {
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

        /// Encodes all keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(baseURL, forKey: .baseURL)
            try container.encode(results, forKey: .results)
        }
    }

    /// `POST /v1/execute` body.
    public struct ExecuteRequest: Sendable, Decodable, Equatable {
        /// The statement.
        public var stmt: Statement
    }

    /// `POST /v1/batch` body.
    public struct BatchRequest: Sendable, Decodable, Equatable {
        /// The batch.
        public var batch: Batch
    }

    /// `{"result": …}` for HTTP API v1.
    public struct ResultEnvelope<Result: Encodable & Sendable>: Sendable, Encodable {
        /// The result.
        public var result: Result

        /// Wraps a result.
        public init(result: Result) {
            self.result = result
        }
    }
}

extension Hrana {
    /// `POST /v3/cursor` body.
    public struct CursorRequest: Sendable, Decodable, Equatable {
        /// The stream's baton, or nil to open a stream.
        public var baton: String?
        /// The batch to run.
        public var batch: Batch
    }

    /// The first line of a cursor response.
    public struct CursorHeader: Sendable, Encodable, Equatable {
        /// The baton for the next request.
        public var baton: String?
        /// Always nil.
        public var baseURL: String?

        /// Creates a header.
        public init(baton: String?) {
            self.baton = baton
        }

        enum CodingKeys: String, CodingKey {
            case baton
            case baseURL = "base_url"
        }

        /// Encodes both keys, null included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(baton, forKey: .baton)
            try container.encode(baseURL, forKey: .baseURL)
        }
    }

    /// One line of a cursor response after the header.
    public enum CursorEntry: Sendable, Encodable, Equatable {
        /// A step starts, with its columns.
        case stepBegin(step: Int, columns: [Column])
        /// A row of the current step.
        case row([HranaValue])
        /// The current step ended.
        case stepEnd(affectedRowCount: Int, lastInsertRowID: Int64?)
        /// A step failed.
        case stepError(step: Int, error: Failure)

        enum CodingKeys: String, CodingKey {
            case type, step, cols, row, error
            case affectedRowCount = "affected_row_count"
            case lastInsertRowID = "last_insert_rowid"
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
            }
        }
    }
}
