import Foundation
import ShoalModel

/// Where a hosted database keeps its settings: `config.json` in its directory.
extension DatabaseSettings {
    static func load(directory: String) throws -> DatabaseSettings {
        guard let data = FileManager.default.contents(atPath: directory + "/config.json") else {
            return DatabaseSettings()
        }
        return try JSONDecoder().decode(DatabaseSettings.self, from: data)
    }

    func save(directory: String) throws {
        let encoder = WireJSON.encoder([.sortedKeys])
        try encoder.encode(self).write(to: URL(fileURLWithPath: directory + "/config.json"), options: .atomic)
    }
}
