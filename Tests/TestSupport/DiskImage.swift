import Foundation

/// Builds and changes raw disk images for tests: runs of zeros, random bytes and text.
public enum DiskImage {
    /// Makes `size` bytes of image content: runs (of up to `maximumRun` bytes) of zeros, random and text.
    public static func content(size: Int, maximumRun: Int = 64 << 10, using generator: inout SeededGenerator) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let length = min(size - offset, Int.random(in: 1...maximumRun, using: &generator))
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<4:
                break  // zeros
            case 4..<7:
                bytes.replaceSubrange(offset..<(offset + length), with: generator.bytes(length))
            default:
                let line = Array("line \(generator.next() % 1000) volume attached ok\n".utf8)
                for index in 0..<length { bytes[offset + index] = line[index % line.count] }
            }
            offset += length
        }
        return bytes
    }

    /// Changes `content` like a day of use: rewrites some random ranges, zeroes others, and may grow it.
    public static func mutate(
        _ content: inout [UInt8], blockSize: Int, changes: Int, growBy: Int = 0, using generator: inout SeededGenerator
    ) {
        for _ in 0..<changes where !content.isEmpty {
            let start = Int.random(in: 0..<content.count, using: &generator)
            let length = min(content.count - start, Int.random(in: 1...(blockSize * 3), using: &generator))
            switch Int.random(in: 0..<4, using: &generator) {
            case 0:
                // A whole aligned block becomes zero, the case that must restore as zeros.
                let blockStart = start / blockSize * blockSize
                let end = min(content.count, blockStart + blockSize)
                for index in blockStart..<end { content[index] = 0 }
            case 1:
                content[start] ^= 0xFF  // a single flipped byte
            default:
                content.replaceSubrange(start..<(start + length), with: generator.bytes(length))
            }
        }
        if growBy > 0 {
            content += generator.bytes(growBy / 2) + [UInt8](repeating: 0, count: growBy - growBy / 2)
        }
    }

    /// Writes `content` to `path`, replacing the file.
    public static func write(_ content: [UInt8], to path: String) throws {
        try Data(content).write(to: URL(fileURLWithPath: path))
    }

    /// Reads the whole file at `path`.
    public static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
