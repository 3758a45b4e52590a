#if !SHOAL_FUZZ
    import Foundation

    /// Without libFuzzer (a plain `swift build`, where `SHOAL_FUZZ` is not defined): runs each file
    /// named on the command line, or each file in a folder named there, through the same checks once.
    @main
    struct CorpusReplay {
        static func main() throws {
            let paths = Array(CommandLine.arguments.dropFirst())
            guard !paths.isEmpty else {
                FileHandle.standardError.write(
                    Data("usage: shoal-fuzz-decoders FILE_OR_FOLDER... (the seed corpus: Tests/Fuzz/corpus)\n".utf8))
                exit(2)
            }
            var count = 0
            for path in paths {
                for file in try files(at: path) {
                    DecoderFuzzer.check(try Data(contentsOf: URL(fileURLWithPath: file)))
                    count += 1
                }
            }
            print("shoal-fuzz-decoders: \(count) inputs, every round trip held")
        }

        /// `path` itself, or the files in the folder `path`, in name order.
        static func files(at path: String) throws -> [String] {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                FileHandle.standardError.write(Data("shoal-fuzz-decoders: \(path) does not exist\n".utf8))
                exit(2)
            }
            guard isFolder.boolValue else { return [path] }
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
        }
    }
#endif
