import Foundation

extension Platform {
    /// What can be restored of a database (`GET …/databases/{db}/backups`, and the node's
    /// `GET /v1/namespaces/{org}/{db}/backups`).
    public struct BackupStatus: Codable, Sendable, Equatable {
        /// The database.
        public var database: String
        /// The earliest time a restore reaches (RFC 3339), nil with no backup yet.
        public var earliest: String?
        /// The newest commit in the store (RFC 3339).
        public var latest: String?
        /// Whether commits not yet in the store exist.
        public var pending: Bool
        /// Seconds since the oldest commit not yet in the store (0 when none is pending).
        public var lagSeconds: Double
        /// The objects the backup is made of.
        public var objects: Int
        /// The generation and frame shipped last.
        public var generation: UInt64?
        /// See `generation`.
        public var frame: UInt64?

        enum CodingKeys: String, CodingKey {
            case database, earliest, latest, pending, objects, generation, frame
            case lagSeconds = "lag_seconds"
        }

        /// A status.
        public init(
            database: String, earliest: String?, latest: String?, pending: Bool, lagSeconds: Double, objects: Int,
            generation: UInt64?, frame: UInt64?
        ) {
            self.database = database
            self.earliest = earliest
            self.latest = latest
            self.pending = pending
            self.lagSeconds = lagSeconds
            self.objects = objects
            self.generation = generation
            self.frame = frame
        }
    }

    /// `POST …/databases/{db}/restore`: the time to restore to (RFC 3339; absent: the newest in the
    /// store). To the node also the backup to restore from (another database's, for a new database
    /// seeded from it; absent: its own).
    public struct RestoreRequest: Codable, Sendable, Equatable {
        /// RFC 3339, e.g. `2026-12-01T18:00:00Z`.
        public var timestamp: String?
        /// The backup id to restore from (node API only).
        public var source: String?

        /// A request.
        public init(timestamp: String?, source: String? = nil) {
            self.timestamp = timestamp
            self.source = source
        }
    }

    /// What a restore did.
    public struct RestoreResult: Codable, Sendable, Equatable {
        /// The database restored.
        public var database: String
        /// The time of the last transaction applied (RFC 3339).
        public var restoredTo: String
        /// The database's size now, in bytes.
        public var bytes: Int64
        /// The generation the database continues from.
        public var generation: UInt64
        /// For a restore in place: the time of the state it replaced; restoring to it undoes this
        /// restore.
        public var undoTimestamp: String?

        enum CodingKeys: String, CodingKey {
            case database, bytes, generation
            case restoredTo = "restored_to"
            case undoTimestamp = "undo_timestamp"
        }

        /// A result.
        public init(database: String, restoredTo: String, bytes: Int64, generation: UInt64, undoTimestamp: String?) {
            self.database = database
            self.restoredTo = restoredTo
            self.bytes = bytes
            self.generation = generation
            self.undoTimestamp = undoTimestamp
        }
    }

    /// A deleted database whose backups are still kept (`GET …/deleted-databases`): it can be
    /// undeleted until `erase_at`, when its backups are erased for good.
    public struct DeletedDatabase: Codable, Sendable, Equatable {
        /// Its name.
        public var name: String
        /// The deleted incarnation's id.
        public var id: String
        /// The group it was in (an undelete creates it there again).
        public var group: String
        /// When it was deleted (RFC 3339).
        public var deletedAt: String
        /// When its backups are erased (RFC 3339).
        public var eraseAt: String

        enum CodingKeys: String, CodingKey {
            case name, id, group
            case deletedAt = "deleted_at"
            case eraseAt = "erase_at"
        }

        /// A value with every field.
        public init(name: String, id: String, group: String, deletedAt: String, eraseAt: String) {
            self.name = name
            self.id = id
            self.group = group
            self.deletedAt = deletedAt
            self.eraseAt = eraseAt
        }
    }

    /// `POST …/databases/{db}/undelete`'s body, which may be absent: the deleted incarnation to
    /// undelete (its id, as `GET …/deleted-databases` lists it); absent: the newest.
    public struct UndeleteRequest: Codable, Sendable, Equatable {
        /// The deleted database's id.
        public var id: String?

        /// A request.
        public init(id: String? = nil) { self.id = id }
    }

    /// What `POST …/databases/{db}/undelete` made.
    public struct UndeleteResult: Codable, Sendable, Equatable {
        /// The database created again (a new id).
        public var database: CreatedDatabase
        /// The time of the last transaction restored (RFC 3339).
        public var restoredTo: String

        enum CodingKeys: String, CodingKey {
            case database
            case restoredTo = "restored_to"
        }

        /// A value with every field.
        public init(database: CreatedDatabase, restoredTo: String) {
            self.database = database
            self.restoredTo = restoredTo
        }
    }

    /// What a node's `DELETE /v1/backups/{backup}` erased.
    public struct BackupErasure: Codable, Sendable, Equatable {
        /// The backup's name in the store.
        public var backup: String
        /// The objects removed.
        public var objects: Int

        /// A value with every field.
        public init(backup: String, objects: Int) {
            self.backup = backup
            self.objects = objects
        }
    }
}

/// RFC 3339 times as the API writes and reads them, to the microsecond.
public enum RFC3339 {
    /// Microseconds since 1970 written as `2026-12-01T18:00:00.123456Z`.
    public static func format(microseconds: Int64) -> String {
        let seconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        let fraction = microseconds - seconds * 1_000_000
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents(
            [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: Double(seconds)))
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        return String(format: "%04d", parts.year ?? 0) + "-\(two(parts.month))-\(two(parts.day))T"
            + "\(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))." + String(format: "%06lld", fraction) + "Z"
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space or `t` for `T`, `z` for `Z`) into
    /// microseconds since 1970; nil for anything else.
    public static func microseconds(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count, range.allSatisfy({ bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }) else {
                return nil
            }
            return range.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
        }
        guard bytes.count >= 20, bytes[4] == 0x2D, bytes[7] == 0x2D, [0x54, 0x74, 0x20].contains(bytes[10]),
            bytes[13] == 0x3A, bytes[16] == 0x3A,
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if bytes[index] == 0x2E {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                if digits < 6 { fraction = fraction * 10 + Int64(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0, digits <= 9 else { return nil }
            if digits < 6 { for _ in digits..<6 { fraction *= 10 } }
        }
        var offsetSeconds = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == 0x5A || bytes[index] == 0x7A {
            guard index + 1 == bytes.count else { return nil }
        } else {
            guard bytes[index] == 0x2B || bytes[index] == 0x2D, index + 6 == bytes.count, bytes[index + 3] == 0x3A,
                let hours = number((index + 1)..<(index + 3)), let minutes = number((index + 4)..<(index + 6)),
                hours < 24, minutes < 60
            else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (bytes[index] == 0x2B ? 1 : -1)
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        guard let date = calendar.date(from: components),
            calendar.component(.day, from: date) == day  // no 31 February
        else { return nil }
        let seconds = Int64(date.timeIntervalSince1970.rounded()) - Int64(offsetSeconds)
        return seconds * 1_000_000 + fraction
    }
}
