/// One chunk of a restore or verification pass: the extents its worker reads (and writes or zeroes), with
/// at most a chunk's worth of data blocks, so a slot's buffer holds them all.
struct ChunkPlan: Sendable {
    /// One extent of the chunk.
    struct Piece: Sendable {
        /// The blocks and where they come from (never longer than the chunk allows).
        var extent: ChainExtent
        /// For data: the position of its first block in the slot's buffer, in blocks.
        var slotBlock: Int
    }

    /// The pieces, in the order of the extents.
    var pieces: [Piece] = []
    /// Data blocks of all pieces: the slot's blocks in use.
    var dataBlocks = 0
    /// Zero blocks of all pieces.
    var zeroBlocks: UInt64 = 0
}

/// What a whole pass holds, counted without reading data.
struct ChunkPlanTotals: Sendable {
    /// Chunks the planner hands out.
    var chunks = 0
    /// Data blocks in them.
    var dataBlocks: UInt64 = 0
    /// Zero blocks of the extents, whether planned or left alone.
    var zeroBlocks: UInt64 = 0
}

/// Cuts a stream of extents into chunks: each holds up to `dataBlocksPerChunk` data blocks and, when zero
/// extents need work (a target whose old contents are not trusted), up to `zeroBlocksPerChunk` zero
/// blocks; an extent longer than that is split over chunks. Without `zeroBlocksPerChunk`, zero extents
/// need no work (the holes of a new file, or no target at all) and are only counted.
///
/// The same extents always give the same chunks, so a pass counts its chunks with one planner and hands
/// out their plans with another. Used by one thread at a time (a pass's ordered load stage, in chunk
/// order, under the pipeline's lock), which makes the `@unchecked Sendable` sound.
final class ChunkPlanner: @unchecked Sendable {
    private let source: any ChainExtentSource
    private let dataBlocksPerChunk: Int
    private let zeroBlocksPerChunk: UInt64?
    private var remainder: ChainExtent?
    /// What the plans handed out so far hold.
    private(set) var totals = ChunkPlanTotals()

    /// A planner over `source`'s extents.
    init(source: any ChainExtentSource, dataBlocksPerChunk: Int, zeroBlocksPerChunk: UInt64?) {
        precondition(dataBlocksPerChunk >= 1 && (zeroBlocksPerChunk ?? 1) >= 1)
        self.source = source
        self.dataBlocksPerChunk = dataBlocksPerChunk
        self.zeroBlocksPerChunk = zeroBlocksPerChunk
    }

    /// Runs the planner to its end and returns the totals: what a pass over the same extents will do.
    func count() throws(BlockDeltaError) -> ChunkPlanTotals {
        while try next() != nil {}
        return totals
    }

    /// The next chunk's plan, or nil when no extent needing work is left.
    func next() throws(BlockDeltaError) -> ChunkPlan? {
        var plan = ChunkPlan()
        filling: while true {
            let extent: ChainExtent
            if let remainder {
                extent = remainder
                self.remainder = nil
            } else if let next = try source.next() {
                extent = next
            } else {
                break
            }
            let room: UInt64
            switch extent.source {
            case .zero:
                guard let zeroBlocksPerChunk else {
                    totals.zeroBlocks += extent.blockCount
                    continue filling
                }
                room = zeroBlocksPerChunk - plan.zeroBlocks
            case .data:
                room = UInt64(dataBlocksPerChunk - plan.dataBlocks)
            }
            let taken = min(room, extent.blockCount)
            if taken > 0 {
                plan.pieces.append(.init(extent: extent.prefix(taken), slotBlock: plan.dataBlocks))
                if case .zero = extent.source {
                    plan.zeroBlocks += taken
                    totals.zeroBlocks += taken
                } else {
                    plan.dataBlocks += Int(taken)
                    totals.dataBlocks += taken
                }
            }
            if taken < extent.blockCount {
                remainder = extent.dropFirst(taken)
                break filling
            }
        }
        guard !plan.pieces.isEmpty else { return nil }
        totals.chunks += 1
        return plan
    }
}
