/// CRC-32 (IEEE 802.3, the zlib polynomial), used to validate Shoal's own small records.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1
        }
        return value
    }

    /// The CRC-32 of `bytes`, continuing from `crc` (0 to start).
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        for byte in bytes {
            value = table[Int((value ^ UInt32(byte)) & 0xff)] ^ (value >> 8)
        }
        return ~value
    }

    /// The CRC-32 of `bytes`.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// A fast 64-bit Fletcher-style checksum over 8-byte words (little-endian), for detecting torn or
/// stale bulk data (the redo log's pages) at memory speed.
enum BulkChecksum {
    /// The checksum of `bytes` (a trailing partial word is zero-padded).
    static func of(_ bytes: UnsafeRawBufferPointer, continuing seed: UInt64 = 0) -> UInt64 {
        var sum1 = seed & 0xffff_ffff
        var sum2 = seed >> 32
        let words = bytes.count / 8
        guard let base = bytes.baseAddress else { return seed }
        for index in 0..<words {
            sum1 = sum1 &+ UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            sum2 = sum2 &+ sum1
        }
        var tail: UInt64 = 0
        for offset in (words * 8)..<bytes.count {
            tail |= UInt64(bytes[offset]) << (8 * UInt64(offset - words * 8))
        }
        sum1 = sum1 &+ tail
        sum2 = sum2 &+ sum1
        return (sum2 << 32) ^ (sum1 & 0xffff_ffff) ^ (sum1 >> 32)
    }
}
