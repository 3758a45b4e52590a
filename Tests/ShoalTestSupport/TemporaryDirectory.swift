import Foundation

/// A directory owned by one test, removed when the value is released.
public final class TemporaryDirectory: Sendable {
    /// Its path.
    public let path: String

    /// A new, empty directory under the system's temporary directory.
    public init() throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("shoal-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// How many of this process's file descriptors point into the directory.
    public func openDescriptorCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count { entry in
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry)
            return target?.hasPrefix(path + "/") == true
        }
    }
}
