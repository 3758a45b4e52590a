import Foundation

/// `meta.json` of a primary database directory: the current generation.
struct PrimaryMeta: Codable, Equatable {
    var version = 1
    var generation: UInt64

    init(generation: UInt64) {
        self.generation = generation
    }

    static func load(directory: String) throws -> PrimaryMeta? {
        let path = directory + "/meta.json"
        guard PosixFile.exists(path) else { return nil }
        let file = try PosixFile(path: path, flags: O_RDONLY)
        let bytes = try file.read(count: Int(try file.size()), at: 0)
        do {
            let meta = try JSONDecoder().decode(PrimaryMeta.self, from: Data(bytes))
            guard meta.version == 1, meta.generation >= 1 else {
                throw ReplicationError.corruptState(
                    "\(path) has version \(meta.version), generation \(meta.generation)")
            }
            return meta
        } catch let error as ReplicationError {
            throw error
        } catch {
            throw ReplicationError.corruptState("\(path) is not valid: \(error); restore it from a backup")
        }
    }

    func save(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(self))
        try FileSystem.writeAtomically(bytes, to: directory + "/meta.json", directory: directory)
    }
}
