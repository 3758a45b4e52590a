import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Reads lines from a terminal with editing and history: ←/→ move, ↑/↓ walk the history,
/// backspace, Ctrl-A/Ctrl-E, Ctrl-U clears, Ctrl-C drops the line, Ctrl-D on an empty line ends.
/// History persists in a file, one entry per line.
final class LineEditor {
    private(set) var history: [String] = []
    private let historyFile: String?
    private let limit = 1000

    init(historyFile: String?) {
        self.historyFile = historyFile
        if let historyFile, let text = try? String(contentsOfFile: historyFile, encoding: .utf8) {
            history = text.split(separator: "\n").map { $0.replacingOccurrences(of: "\\n", with: "\n") }
        }
    }

    /// Adds an entry (not a repeat of the last one) and appends it to the history file.
    func remember(_ entry: String) {
        let entry = entry.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !entry.isEmpty, entry != history.last else { return }
        history.append(entry)
        if history.count > limit { history.removeFirst(history.count - limit) }
        guard let historyFile else { return }
        let line = entry.replacingOccurrences(of: "\n", with: "\\n") + "\n"
        if let handle = FileHandle(forWritingAtPath: historyFile) {
            handle.seekToEndOfFile()
            handle.write(Data(line.utf8))
            try? handle.close()
        } else {
            _ = FileManager.default.createFile(atPath: historyFile, contents: Data(line.utf8))
        }
    }

    /// Reads one line after `prompt`; nil at end of input (Ctrl-D on an empty line).
    func readLine(prompt: String) -> String? {
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else {
            FileHandle.standardOutput.write(Data(prompt.utf8))
            return Swift.readLine()
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | IEXTEN | ISIG)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        defer { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }

        var buffer: [Character] = []
        var cursor = 0
        var browsing = history.count
        var draft: [Character] = []
        func redraw() {
            var text = "\r\u{1b}[K" + prompt + String(buffer)
            let back = buffer.count - cursor
            if back > 0 { text += "\u{1b}[\(back)D" }
            write(text)
        }
        write(prompt)
        while let byte = readByte() {
            switch byte {
            case 13, 10:
                write("\r\n")
                return String(buffer)
            case 4:
                if buffer.isEmpty {
                    write("\r\n")
                    return nil
                }
            case 3:
                write("^C\r\n")
                buffer = []
                cursor = 0
                browsing = history.count
                write(prompt)
            case 127, 8:
                if cursor > 0 {
                    buffer.remove(at: cursor - 1)
                    cursor -= 1
                    redraw()
                }
            case 1:
                cursor = 0
                redraw()
            case 5:
                cursor = buffer.count
                redraw()
            case 21:
                buffer = []
                cursor = 0
                redraw()
            case 27:
                guard readByte() == UInt8(ascii: "["), let key = readByte() else { continue }
                switch key {
                case UInt8(ascii: "A"):
                    guard browsing > 0 else { continue }
                    if browsing == history.count { draft = buffer }
                    browsing -= 1
                    buffer = Array(history[browsing])
                    cursor = buffer.count
                    redraw()
                case UInt8(ascii: "B"):
                    guard browsing < history.count else { continue }
                    browsing += 1
                    buffer = browsing == history.count ? draft : Array(history[browsing])
                    cursor = buffer.count
                    redraw()
                case UInt8(ascii: "C"):
                    if cursor < buffer.count {
                        cursor += 1
                        redraw()
                    }
                case UInt8(ascii: "D"):
                    if cursor > 0 {
                        cursor -= 1
                        redraw()
                    }
                default: continue
                }
            default:
                guard byte >= 32 else { continue }
                var bytes = [byte]
                // A multi-byte UTF-8 character: read its continuation bytes.
                let extra = byte >= 0xF0 ? 3 : byte >= 0xE0 ? 2 : byte >= 0xC0 ? 1 : 0
                for _ in 0..<extra { if let next = readByte() { bytes.append(next) } }
                for character in String(decoding: bytes, as: UTF8.self) {
                    buffer.insert(character, at: cursor)
                    cursor += 1
                }
                redraw()
            }
        }
        return buffer.isEmpty ? nil : String(buffer)
    }

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        return read(STDIN_FILENO, &byte, 1) == 1 ? byte : nil
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
