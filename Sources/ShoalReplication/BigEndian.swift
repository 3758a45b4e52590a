/// Reading and writing big-endian and little-endian integers in byte buffers.
extension UnsafeRawBufferPointer {
    /// The big-endian 32-bit integer at `offset`.
    @inline(__always)
    public func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }

    @inline(__always)
    func littleEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }

    @inline(__always)
    func littleEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(littleEndianUInt32(at: offset)) | UInt64(littleEndianUInt32(at: offset + 4)) << 32
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func storeBigEndian(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 24)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 3] = UInt8(truncatingIfNeeded: value)
    }

    @inline(__always)
    func storeLittleEndian(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    @inline(__always)
    func storeLittleEndian(_ value: UInt64, at offset: Int) {
        storeLittleEndian(UInt32(truncatingIfNeeded: value), at: offset)
        storeLittleEndian(UInt32(truncatingIfNeeded: value >> 32), at: offset + 4)
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    func bigEndianUInt32(at offset: Int) -> UInt32 {
        withUnsafeBytes { $0.bigEndianUInt32(at: offset) }
    }

    @inline(__always)
    mutating func storeBigEndian(_ value: UInt32, at offset: Int) {
        withUnsafeMutableBytes { $0.storeBigEndian(value, at: offset) }
    }
}
