/// How a backup's block data (`.bvmdk`) is written: raw and contiguous, or framed per block with zstd.
///
/// A property of where the backup goes, not of the backup: a directory repository asks for
/// ``zstd(level:)`` (a Full there is bound by writing its bytes durably, so fewer bytes is a faster Full),
/// while streams (tar, Bacula) carry ``raw`` data. Either is restored by every reader: the data file's
/// header says which layout it has (see ``BlockDataLayout``).
public enum DataEncoding: Hashable, Sendable, CustomStringConvertible {
    /// Every block's bytes, concatenated (format version 1).
    case raw
    /// Every block compressed with zstd at `level` on its own, kept raw where that does not shrink it
    /// (format version 2, framed).
    case zstd(level: Int)

    /// What a directory repository writes unless told otherwise: zstd at the level chosen by the
    /// measurement in docs/benchmarks.md.
    public static let directoryDefault = DataEncoding.zstd(level: 3)

    /// The levels libzstd accepts (negative levels are its fast modes).
    public static var zstdLevels: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    /// The layout of the data file this encoding writes.
    public var layout: BlockDataLayout {
        switch self {
        case .raw: .contiguous
        case .zstd: .framed
        }
    }

    /// Parses `none`, `raw`, `zstd` (the default level) or `zstd:LEVEL`; throws a usage error naming the text.
    public init(parsing text: String) throws(BlockDeltaError) {
        let lowered = text.lowercased()
        if lowered == "none" || lowered == "raw" {
            self = .raw
            return
        }
        guard lowered == "zstd" || lowered.hasPrefix("zstd:") else {
            throw .invalidArgument(
                "unknown compression '\(text)'", hint: "use none, zstd or zstd:LEVEL (\(Self.zstdLevels.lowerBound) to \(Self.zstdLevels.upperBound))")
        }
        guard lowered != "zstd" else {
            self = Self.directoryDefault
            return
        }
        guard let level = Int(lowered.dropFirst("zstd:".count)), Self.zstdLevels.contains(level) else {
            throw .invalidArgument(
                "compression '\(text)' has no valid zstd level",
                hint: "give a level from \(Self.zstdLevels.lowerBound) to \(Self.zstdLevels.upperBound), e.g. zstd:1")
        }
        self = .zstd(level: level)
    }

    /// `none` or `zstd:LEVEL`, as ``init(parsing:)`` reads it.
    public var description: String {
        switch self {
        case .raw: "none"
        case .zstd(let level): "zstd:\(level)"
        }
    }
}

/// The two layouts of a block data file, told apart by the format version in its header.
public enum BlockDataLayout: Hashable, Sendable {
    /// Version 1: the blocks' bytes concatenated; block *i* starts at a computable offset.
    case contiguous
    /// Version 2: one frame per block (a 4-byte frame word, then the raw or zstd payload); see
    /// ``BlockFrameWord``.
    case framed

    /// The format version in the data file's header.
    public var formatVersion: UInt16 {
        switch self {
        case .contiguous: 1
        case .framed: 2
        }
    }
}

import CZstd
