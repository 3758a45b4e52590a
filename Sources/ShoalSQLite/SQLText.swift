internal import CSQLite

/// SQL text as SQLite's tokenizer sees it, without a database: where statements end.
public enum SQLText {
    /// Whether `sql` ends with a complete statement (`sqlite3_complete`): a `;` outside quotes,
    /// comments and trigger bodies.
    public static func isComplete(_ sql: String) -> Bool {
        sqlite3_complete(sql) != 0
    }

    /// Splits `sql` into statements (each with its `;`); a trailing incomplete piece is returned
    /// as the last element, unterminated. Blank pieces are dropped.
    public static func statements(_ sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        for character in sql {
            current.append(character)
            if character == ";", isComplete(current) {
                if !current.trimmingWhitespaceAndSemicolons.isEmpty { statements.append(current) }
                current = ""
            }
        }
        if !current.trimmingWhitespaceAndSemicolons.isEmpty { statements.append(current) }
        return statements
    }
}

extension String {
    var trimmingWhitespaceAndSemicolons: Substring {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace || first == ";" { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace || last == ";" { text = text.dropLast() }
        return text
    }
}
