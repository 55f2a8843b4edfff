/// Reads the frames of a framed block data file (see ``BlockFrameWord``) front to back, the frames a pass
/// needs and skipping the others: the payload of a zstd frame into a staging buffer, the bytes of a raw
/// frame straight into place.
///
/// One `pread` per frame read: it takes the payload and the next frame's word together, which is why every
/// destination must have 4 bytes of room after the payload (bytes a later frame or decompression
/// overwrites). A skipped frame costs one 4-byte `pread` of its word.
///
/// Used by one thread at a time, in chunk order (the ``OrderedPipeline``'s ordered load stage hands it
/// from worker to worker under its lock): that invariant makes the `@unchecked Sendable` sound.
final class FrameReader: @unchecked Sendable {
    private let data: FormatFileReader
    private let end: UInt64
    private let blockSize: Int
    private let dataBlocks: UInt64
    private let lastBlockBytes: Int
    /// The file offset of the next frame word.
    private(set) var offset = UInt64(FormatHeader.size)
    /// The index of the next frame (its data block).
    private(set) var nextBlock: UInt64 = 0
    /// The next frame's word when the last read brought it along.
    private var pendingWord: UInt32?
    private var wordBytes = [UInt8](repeating: 0, count: BlockFrameWord.size)

    /// Bytes each destination needs after the payload.
    static let spill = BlockFrameWord.size

    /// A reader of `backup`'s framed data file.
    init(backup: VolumeBackupReader) {
        precondition(backup.data.header.layout == .framed)
        data = backup.data
        end = UInt64(FormatHeader.size) + backup.data.recordCount
        blockSize = backup.descriptor.geometry.blockSize
        dataBlocks = backup.summary.dataBlocks
        // Only the volume's last block can be short, and it is the last data block when it is data.
        lastBlockBytes = dataBlocks == 0 ? 0 : Int(backup.summary.dataBytes - (dataBlocks - 1) * UInt64(blockSize))
    }

    /// The uncompressed size of data block `index`.
    private func bytes(ofDataBlock index: UInt64) -> Int {
        index == dataBlocks - 1 ? lastBlockBytes : blockSize
    }

    /// The word of the frame at ``offset``, checked against its block.
    private func currentWord() throws(BlockDeltaError) -> BlockFrameWord {
        let block = nextBlock
        let start = offset
        guard block < dataBlocks else {
            throw .malformed(path: data.path, "data block \(block) was asked for but the file holds \(dataBlocks)")
        }
        let raw: UInt32
        if let pendingWord {
            raw = pendingWord
        } else {
            guard end - start >= UInt64(BlockFrameWord.size) else {
                throw .malformed(
                    path: data.path, "frames end at byte \(end) before the frame of data block \(block)",
                    hint: "the file is truncated or damaged; restore from another copy")
            }
            try wordBytes.withMutableBytes { buffer throws(BlockDeltaError) in try data.file.readExactly(into: buffer, at: start) }
            raw = wordBytes.littleEndian(UInt32.self, at: 0)
        }
        let word = BlockFrameWord(encoded: raw)
        let blockBytes = bytes(ofDataBlock: block)
        guard word.fits(blockBytes: blockBytes) else {
            throw .malformed(
                path: data.path,
                "frame of data block \(block) at byte \(start) stores \(word.storedLength) \(word.isCompressed ? "zstd" : "raw") bytes for a block of \(blockBytes)",
                hint: "the file is damaged; restore from another copy")
        }
        let payloadStart = start + UInt64(BlockFrameWord.size)
        guard UInt64(word.storedLength) <= end - payloadStart else {
            throw .malformed(
                path: data.path,
                "frame of data block \(block) at byte \(start) runs \(UInt64(word.storedLength) - (end - payloadStart)) bytes past the end of the frames",
                hint: "the file is truncated or damaged; restore from another copy")
        }
        return word
    }

    /// Moves past frames up to data block `index` without reading their payloads.
    func skip(to index: UInt64) throws(BlockDeltaError) {
        precondition(index >= nextBlock, "frames are read front to back")
        while nextBlock < index {
            let word = try currentWord()
            offset += UInt64(BlockFrameWord.size + word.storedLength)
            pendingWord = nil
            nextBlock += 1
        }
    }

    /// Reads the next frame: a raw payload into `raw`, a zstd payload into `staging`, each of which must
    /// hold the block's bytes and ``spill`` more. Returns the word and the file offset of the frame.
    func next(
        raw: UnsafeMutableRawBufferPointer, staging: UnsafeMutableRawBufferPointer
    ) throws(BlockDeltaError) -> (word: BlockFrameWord, offset: UInt64) {
        let word = try currentWord()
        let start = offset
        let payloadStart = start + UInt64(BlockFrameWord.size)
        let nextStart = payloadStart + UInt64(word.storedLength)
        let spill = end - nextStart >= UInt64(Self.spill) ? Self.spill : 0
        let destination = word.isCompressed ? staging : raw
        precondition(destination.count >= word.storedLength + Self.spill)
        try data.file.readExactly(
            into: UnsafeMutableRawBufferPointer(rebasing: destination[0..<(word.storedLength + spill)]), at: payloadStart)
        if spill > 0 {
            let bytes = UnsafeRawBufferPointer(rebasing: destination[word.storedLength..<(word.storedLength + spill)])
            pendingWord = bytes.loadUnaligned(as: UInt32.self).littleEndian
        } else {
            pendingWord = nil
        }
        offset = nextStart
        nextBlock += 1
        return (word, start)
    }

    /// Checks that the frames read or skipped so far are all the file holds; with `unlessUnread`, only when
    /// the last data block's frame was read (a restore stops after the last frame it needs).
    func expectEnd(unlessUnread: Bool = false) throws(BlockDeltaError) {
        if unlessUnread && nextBlock < dataBlocks { return }
        guard offset == end else {
            throw .malformed(
                path: data.path, "holds \(end - offset) bytes after its \(nextBlock) frames, one per data block",
                hint: "the file is damaged or from another backup")
        }
    }
}
