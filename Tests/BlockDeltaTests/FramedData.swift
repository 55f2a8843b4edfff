import BlockDelta
import CZstd
import Foundation
import TestSupport

/// Reads the frame words of a framed block data file, front to back: what the writer chose per block.
func frameWords(of path: String) throws -> [BlockFrameWord] {
    let bytes = try DiskImage.read(path)
    var words: [BlockFrameWord] = []
    var offset = FormatHeader.size
    let end = bytes.count - FormatHeader.trailerSize
    while offset < end {
        let raw = bytes[offset..<(offset + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let word = BlockFrameWord(encoded: raw)
        words.append(word)
        offset += BlockFrameWord.size + word.storedLength
    }
    return words
}

/// A zstd frame of `bytes`, made with libzstd directly (to craft frames the scanner would never write).
func zstdFrame(of bytes: [UInt8]) -> [UInt8] {
    var frame = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
    let size = frame.withUnsafeMutableBytes { out in
        bytes.withUnsafeBytes { ZSTD_compress(out.baseAddress, out.count, $0.baseAddress, $0.count, 3) }
    }
    precondition(ZSTD_isError(size) == 0)
    return Array(frame[0..<size])
}

/// Content of one kind, for the compression tests.
enum ContentKind: String, CaseIterable, CustomStringConvertible {
    /// Log-like text: every block shrinks.
    case compressible
    /// Random bytes: no block shrinks, every one is stored raw.
    case incompressible
    /// Runs of zeros, random bytes and text.
    case mixed

    var description: String { rawValue }

    func content(size: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        switch self {
        case .compressible:
            var text = ""
            while text.utf8.count < size { text += "line \(generator.next() % 1000) volume attached ok\n" }
            return Array(text.utf8.prefix(size))
        case .incompressible:
            return generator.bytes(size)
        case .mixed:
            return DiskImage.content(size: size, maximumRun: 16 << 10, using: &generator)
        }
    }
}
