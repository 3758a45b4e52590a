import ShoalModel

// Hrana requests written back in their wire form, key for key as the libSQL clients send them.
// ShoalModel only decodes requests (a server never sends one), so the fuzzer writes them itself;
// values (`HranaValue`) and named arguments go through ShoalModel's own encoders.

/// A statement: `sql` or `sql_id`, `args`, `named_args`, `want_rows`.
struct WireStatement: Encodable {
    let statement: Hrana.Statement

    init(_ statement: Hrana.Statement) {
        self.statement = statement
    }

    enum CodingKeys: String, CodingKey {
        case sql, args
        case sqlID = "sql_id"
        case namedArgs = "named_args"
        case wantRows = "want_rows"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(statement.sql, forKey: .sql)
        try container.encodeIfPresent(statement.sqlID, forKey: .sqlID)
        try container.encode(statement.arguments, forKey: .args)
        try container.encode(statement.namedArguments, forKey: .namedArgs)
        try container.encode(statement.wantRows, forKey: .wantRows)
    }
}

/// A batch step condition, tagged by `type`.
struct WireCondition: Encodable {
    let condition: Hrana.Condition

    init(_ condition: Hrana.Condition) {
        self.condition = condition
    }

    enum CodingKeys: String, CodingKey {
        case type, step, cond, conds
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch condition {
        case .ok(let step):
            try container.encode("ok", forKey: .type)
            try container.encode(step, forKey: .step)
        case .error(let step):
            try container.encode("error", forKey: .type)
            try container.encode(step, forKey: .step)
        case .not(let inner):
            try container.encode("not", forKey: .type)
            try container.encode(WireCondition(inner), forKey: .cond)
        case .and(let conditions):
            try container.encode("and", forKey: .type)
            try container.encode(conditions.map(WireCondition.init), forKey: .conds)
        case .or(let conditions):
            try container.encode("or", forKey: .type)
            try container.encode(conditions.map(WireCondition.init), forKey: .conds)
        case .isAutocommit:
            try container.encode("is_autocommit", forKey: .type)
        }
    }
}

/// A batch: `steps`, each an optional `condition` and a `stmt`.
struct WireBatch: Encodable {
    let batch: Hrana.Batch

    init(_ batch: Hrana.Batch) {
        self.batch = batch
    }

    enum CodingKeys: String, CodingKey {
        case steps
    }

    enum StepKeys: String, CodingKey {
        case condition, stmt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var steps = container.nestedUnkeyedContainer(forKey: .steps)
        for step in batch.steps {
            var stepContainer = steps.nestedContainer(keyedBy: StepKeys.self)
            try stepContainer.encodeIfPresent(step.condition.map(WireCondition.init), forKey: .condition)
            try stepContainer.encode(WireStatement(step.statement), forKey: .stmt)
        }
    }
}

/// A stream request, tagged by `type`.
struct WireStreamRequest: Encodable {
    let request: Hrana.StreamRequest

    init(_ request: Hrana.StreamRequest) {
        self.request = request
    }

    enum CodingKeys: String, CodingKey {
        case type, stmt, batch, sql
        case sqlID = "sql_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch request {
        case .execute(let statement):
            try container.encode("execute", forKey: .type)
            try container.encode(WireStatement(statement), forKey: .stmt)
        case .batch(let batch):
            try container.encode("batch", forKey: .type)
            try container.encode(WireBatch(batch), forKey: .batch)
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

/// `POST /v2|v3/pipeline`: `baton` (absent for a new stream) and `requests`.
struct WirePipelineRequest: Encodable {
    let body: Hrana.PipelineRequest

    init(_ body: Hrana.PipelineRequest) {
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case baton, requests
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(body.baton, forKey: .baton)
        try container.encode(body.requests.map(WireStreamRequest.init), forKey: .requests)
    }
}

/// `POST /v3/cursor`: `baton` and `batch`.
struct WireCursorRequest: Encodable {
    let body: Hrana.CursorRequest

    init(_ body: Hrana.CursorRequest) {
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case baton, batch
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(body.baton, forKey: .baton)
        try container.encode(WireBatch(body.batch), forKey: .batch)
    }
}

/// `POST /v1/execute`: `stmt`.
struct WireExecuteRequest: Encodable {
    let body: Hrana.ExecuteRequest

    init(_ body: Hrana.ExecuteRequest) {
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case stmt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(WireStatement(body.stmt), forKey: .stmt)
    }
}

/// `POST /v1/batch`: `batch`.
struct WireBatchRequest: Encodable {
    let body: Hrana.BatchRequest

    init(_ body: Hrana.BatchRequest) {
        self.body = body
    }

    enum CodingKeys: String, CodingKey {
        case batch
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(WireBatch(body.batch), forKey: .batch)
    }
}
