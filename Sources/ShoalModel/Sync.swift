/// The JSON bodies of libSQL's sync protocol (v2: `/info`, `/export/{g}`, `/sync/{g}/{start}/{end}`);
/// frames and exports themselves travel as raw bytes.
public enum SyncProtocol {
    /// `GET /info`'s answer: `{"current_generation": N}`.
    public struct GenerationInfo: Sendable, Codable, Equatable {
        /// The generation a replica should sync from (1 or more).
        public var currentGeneration: UInt64

        /// An answer naming `currentGeneration`.
        public init(currentGeneration: UInt64) {
            self.currentGeneration = currentGeneration
        }

        enum CodingKeys: String, CodingKey {
            case currentGeneration = "current_generation"
        }
    }

    /// The "nothing more" answer (HTTP 400) of `GET /sync/{g}/{start}/{end}`:
    /// `{"status":"checkpoint_needed","generation":G,"max_frame_no":F}`.
    public struct CheckpointNeeded: Sendable, Codable, Equatable {
        /// The `status` this answer carries.
        public static let status = "checkpoint_needed"

        /// The generation the server is on (the replica must move to it if it differs).
        public var generation: UInt64
        /// The last frame of that generation, nil when the server did not say.
        public var maxFrameNumber: UInt64?

        /// An answer for `generation`, whose last frame is `maxFrameNumber`.
        public init(generation: UInt64, maxFrameNumber: UInt64?) {
            self.generation = generation
            self.maxFrameNumber = maxFrameNumber
        }

        enum CodingKeys: String, CodingKey {
            case status, generation
            case maxFrameNumber = "max_frame_no"
        }

        /// Decodes the answer; `max_frame_no` may be missing or null, and a `status` other than
        /// `checkpoint_needed` is a `DecodingError.dataCorrupted` (it is some other answer).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let status = try container.decodeIfPresent(String.self, forKey: .status), status != Self.status {
                throw DecodingError.dataCorruptedError(
                    forKey: .status, in: container,
                    debugDescription: "status \(status.prefix(40)) is not checkpoint_needed")
            }
            generation = try container.decode(UInt64.self, forKey: .generation)
            maxFrameNumber = try container.decodeIfPresent(UInt64.self, forKey: .maxFrameNumber)
        }

        /// Encodes `status`, `generation` and `max_frame_no` (null when nil), always all three.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(Self.status, forKey: .status)
            try container.encode(generation, forKey: .generation)
            try container.encode(maxFrameNumber, forKey: .maxFrameNumber)
        }
    }

    /// The answer of `POST /sync/{g}/{start}/{end}` (frames pushed by an offline writer):
    /// `{"status":"ok","generation":G,"max_frame_no":F,"baton":null}`.
    public struct PushResult: Sendable, Codable, Equatable {
        /// `ok` when the frames were applied; `conflict` when the server's log moved on.
        public var status: String
        /// The generation the server is on.
        public var generation: UInt64
        /// The server's last frame after the push, nil when it did not say.
        public var maxFrameNumber: UInt64?
        /// A baton for the next push, nil when the server keeps none.
        public var baton: String?

        /// An answer with every field.
        public init(status: String, generation: UInt64, maxFrameNumber: UInt64?, baton: String? = nil) {
            self.status = status
            self.generation = generation
            self.maxFrameNumber = maxFrameNumber
            self.baton = baton
        }

        enum CodingKeys: String, CodingKey {
            case status, generation, baton
            case maxFrameNumber = "max_frame_no"
        }

        /// Decodes the answer; `max_frame_no` and `baton` may be missing or null.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            status = try container.decode(String.self, forKey: .status)
            generation = try container.decode(UInt64.self, forKey: .generation)
            maxFrameNumber = try container.decodeIfPresent(UInt64.self, forKey: .maxFrameNumber)
            baton = try container.decodeIfPresent(String.self, forKey: .baton)
        }

        /// Encodes all four keys, nulls included.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(generation, forKey: .generation)
            try container.encode(maxFrameNumber, forKey: .maxFrameNumber)
            try container.encode(baton, forKey: .baton)
        }
    }
}
