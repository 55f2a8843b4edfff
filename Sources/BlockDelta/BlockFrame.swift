/// The framed block data file (`.bvmdk`, format version 2): one frame per data block, each block
/// compressed with zstd on its own or kept raw where compression does not shrink it.
///
/// Byte layout (little-endian; docs/formats.md holds the same table):
///
/// ```
/// offset     size  field
///      0      128  common header (see FormatHeader), format version 2
///    128           frames, one per data block, in the order of the digest list:
///                    +0  4  frame word: bits 0-30 stored length L, bit 31 set: zstd, clear: raw
///                    +4  L  payload: raw, the block's bytes (L equals the block's size);
///                           zstd, one zstd frame (1 <= L < the block's size) that decompresses to the block
///  end-40       8  record count: bytes of frames (frame words and payloads together)
///  end-32      32  SHA-256 over the header, the digest list's records and the count (as in version 1)
/// ```
///
/// Every block is *block size* bytes uncompressed, except the volume's last block when it is short; the
/// digest list holds the digests of the uncompressed blocks, so each block is checked after it is
/// decompressed. Frames are read front to back (a restore reads the ones it needs in order, see
/// `FrameReader`, and decompresses and checks them in parallel); a frame that does not fit its block,
/// runs past the frames, fails to decompress or decompresses to another size is refused with the file,
/// the data block and its offset.
public struct BlockFrameWord: Hashable, Sendable {
    /// The size of the frame word in bytes.
    public static let size = 4
    private static let zstdFlag: UInt32 = 1 << 31

    /// Bytes of payload after the word.
    public var storedLength: Int
    /// Whether the payload is a zstd frame (else the block's raw bytes).
    public var isCompressed: Bool

    /// Creates a frame word.
    public init(storedLength: Int, isCompressed: Bool) {
        precondition(storedLength >= 0 && storedLength < Int(Self.zstdFlag))
        self.storedLength = storedLength
        self.isCompressed = isCompressed
    }

    /// Decodes the 32-bit word.
    public init(encoded word: UInt32) {
        storedLength = Int(word & ~Self.zstdFlag)
        isCompressed = word & Self.zstdFlag != 0
    }

    /// The 32-bit word.
    public var encoded: UInt32 { UInt32(storedLength) | (isCompressed ? Self.zstdFlag : 0) }

    /// Whether the word fits a block of `blockBytes` bytes: a raw payload is the block, a zstd payload is
    /// shorter than it and not empty.
    public func fits(blockBytes: Int) -> Bool {
        isCompressed ? storedLength >= 1 && storedLength < blockBytes : storedLength == blockBytes
    }
}
