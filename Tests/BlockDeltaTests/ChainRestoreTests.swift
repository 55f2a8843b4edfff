import BlockDelta
import CZstd
import Foundation
import Testing
import TestSupport

/// A chain of backups of a changing volume, with each day's content kept as the truth to compare with.
struct TestChain {
    var files: [VolumeBackupFiles] = []
    var days: [[UInt8]] = []
    let blockSize: Int

    /// Backs up `days` one after the other (a Full, then Incrementals), the data of backup `i` written with
    /// `encodings[i % encodings.count]`.
    init(days: [[UInt8]], blockSize: Int, encodings: [DataEncoding], in directory: String, chunkSize: Int = 8 << 10) throws {
        self.blockSize = blockSize
        var map: String?
        for (index, day) in days.enumerated() {
            let backup = try scan(
                day, in: directory, name: "b\(index)", blockSize: blockSize, reference: map.map { try HashMapReader(path: $0) },
                encoding: encodings[index % encodings.count],
                configuration: ParallelIOConfiguration(chunkSize: chunkSize, workerCount: 2))
            files.append(backup.files)
            map = backup.map
        }
        self.days = days
    }

    /// Random days of a volume: each one changes, zeroes and un-zeroes ranges of the one before, and may grow.
    static func randomDays(count: Int, size: Int, blockSize: Int, using generator: inout SeededGenerator) -> [[UInt8]] {
        var day = DiskImage.content(size: size, maximumRun: 4 * blockSize, using: &generator)
        var days = [day]
        for _ in 1..<max(count, 1) {
            DiskImage.mutate(
                &day, blockSize: blockSize, changes: Int.random(in: 1...12, using: &generator),
                growBy: Bool.random(using: &generator) ? Int.random(in: 1...(3 * blockSize), using: &generator) : 0,
                using: &generator)
            // A zero range over data, and data over a zero range: the cases between backups that must not leak.
            let zeroStart = Int.random(in: 0..<day.count, using: &generator)
            for index in zeroStart..<min(day.count, zeroStart + 3 * blockSize) { day[index] = 0 }
            if let hole = stride(from: 0, to: day.count - blockSize, by: blockSize).first(where: { start in
                day[start..<(start + blockSize)].allSatisfy { $0 == 0 } && Bool.random(using: &generator)
            }) {
                day.replaceSubrange(hole..<(hole + blockSize / 2), with: generator.bytes(blockSize / 2))
            }
            days.append(day)
        }
        return Array(days.prefix(count))
    }
}

/// The simplest correct restore, to compare with: every backup applied in order onto an array, data
/// regions from the data file (frames decoded with libzstd), zero regions as zeros.
func referenceRestore(_ chain: [VolumeBackupFiles]) throws -> [UInt8] {
    var volume: [UInt8] = []
    for files in chain {
        let backup = try VolumeBackupReader(files: files)
        let geometry = backup.descriptor.geometry
        volume += [UInt8](repeating: 0, count: Int(geometry.volumeSize) - volume.count)
        let data = try DiskImage.read(files.data)
        var position = FormatHeader.size
        let cursor = try backup.regions.makeCursor()
        while let region = try cursor.next() {
            for block in region.firstBlock..<region.endBlock {
                let start = Int(geometry.offset(ofBlock: block))
                let length = geometry.length(ofBlock: block)
                guard region.kind == .data else {
                    volume.replaceSubrange(start..<(start + length), with: [UInt8](repeating: 0, count: length))
                    continue
                }
                switch backup.data.header.layout {
                case .contiguous:
                    volume.replaceSubrange(start..<(start + length), with: data[position..<(position + length)])
                    position += length
                case .framed:
                    let word = BlockFrameWord(
                        encoded: data[position..<(position + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
                    let payload = Array(data[(position + 4)..<(position + 4 + word.storedLength)])
                    position += 4 + word.storedLength
                    var block = payload
                    if word.isCompressed {
                        block = [UInt8](repeating: 0, count: length)
                        let size = block.withUnsafeMutableBytes { out in
                            payload.withUnsafeBytes { ZSTD_decompress(out.baseAddress, out.count, $0.baseAddress, $0.count) }
                        }
                        precondition(size == length)
                    }
                    volume.replaceSubrange(start..<(start + length), with: block)
                }
            }
        }
    }
    return volume
}

/// Where two byte arrays first differ (the shorter one's end when one is a prefix of the other), or nil
/// when they are equal: a failure then prints one number, not two megabytes.
func firstDifference(_ left: some Collection<UInt8>, _ right: some Collection<UInt8>) -> Int? {
    var offset = 0
    for (a, b) in zip(left, right) {
        if a != b { return offset }
        offset += 1
    }
    return left.count == right.count ? nil : offset
}

/// For every block of the newest volume, the backup (oldest first) whose regions list it last and
/// whether it is data there: the merged index, one block at a time.
func naiveNewestSources(_ chain: [VolumeBackupFiles]) throws -> [(backup: Int, isData: Bool)?] {
    let newest = try VolumeBackupReader(files: chain.last!).descriptor.geometry
    var sources = [(backup: Int, isData: Bool)?](repeating: nil, count: Int(newest.blockCount))
    for (index, files) in chain.enumerated() {
        let cursor = try RegionListReader(path: files.regions).makeCursor()
        while let region = try cursor.next() {
            for block in region.firstBlock..<region.endBlock { sources[Int(block)] = (index, region.kind == .data) }
        }
    }
    return sources
}

@Suite("Chain restore at disk speed")
struct ChainRestoreTests {
    @Test(
        "random chains restore byte-exact, as the backups applied in order do",
        arguments: [(4096, 1), (4096, 2), (8192, 3), (4096, 5), (16384, 4), (4096, 6)])
    func randomChains(blockSize: Int, seed: UInt64) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 700 + seed)
            let length = Int.random(in: 1...5, using: &generator)
            let size = Int.random(in: 20...90, using: &generator) * blockSize + Int.random(in: 0..<blockSize, using: &generator)
            let days = TestChain.randomDays(count: length, size: size, blockSize: blockSize, using: &generator)
            let encodings: [[DataEncoding]] = [[.raw], [.zstd(level: 1)], [.raw, .zstd(level: 3)], [.zstd(level: -1), .raw]]
            let chain = try TestChain(
                days: days, blockSize: blockSize, encodings: encodings[Int(seed) % encodings.count], in: directory)
            let restored = "\(directory)/restored.img"
            let result = try ChainRestorer.restore(
                chain: chain.files, to: restored,
                configuration: ParallelIOConfiguration(chunkSize: 3 * blockSize, workerCount: 2, chunksInFlight: 4), logger: testLogger)
            let bytes = try DiskImage.read(restored)
            #expect(firstDifference(bytes, days.last!) == nil)
            #expect(firstDifference(bytes, try referenceRestore(chain.files)) == nil)

            // What the restore read is exactly the newest version of each data block, each once.
            let sources = try naiveNewestSources(chain.files)
            let newestData = sources.filter { $0?.isData == true }.count
            let totalData = try chain.files.reduce(0) { $0 + (try VolumeBackupReader(files: $1).summary.dataBlocks) }
            #expect(result.backups == length)
            #expect(result.dataBlocks == UInt64(newestData))
            #expect(result.supersededBlocks == totalData - UInt64(newestData))
            #expect(result.zeroBlocks == UInt64(sources.count - newestData))
            #expect(result.writtenBytes == result.dataBytes)
            #expect(result.zeroedBytes == 0)
            #expect(result.volumeSize == UInt64(days.last!.count))
        }
    }

    @Test("the merged index gives every block's newest backup and data block, in order", arguments: [1, 2, 3, 4])
    func mergedIndex(seed: UInt64) throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 800 + seed)
            let blockSize = 4096
            let days = TestChain.randomDays(count: 2 + Int(seed), size: 70 * blockSize + 11, blockSize: blockSize, using: &generator)
            let chain = try TestChain(days: days, blockSize: blockSize, encodings: [.raw], in: directory)
            let readers = try ChainRestorer.open(chain: chain.files)
            let cursor = try ChainIndex(readers: readers).makeCursor()
            let sources = try naiveNewestSources(chain.files)
            // The data block index of each block in its backup, counted the slow way.
            var dataIndex = [[UInt64: UInt64]](repeating: [:], count: chain.files.count)
            for (index, files) in chain.files.enumerated() {
                var next: UInt64 = 0
                let regions = try RegionListReader(path: files.regions).makeCursor()
                while let region = try regions.next() {
                    guard region.kind == .data else { continue }
                    for block in region.firstBlock..<region.endBlock {
                        dataIndex[index][block] = next
                        next += 1
                    }
                }
            }
            var position: UInt64 = 0
            var previous: ChainExtent?
            while let extent = try cursor.next() {
                #expect(extent.firstBlock == position)
                #expect(extent.blockCount >= 1)
                // Adjacent extents from the same place are joined into one.
                switch (previous?.source, extent.source) {
                case (.zero?, .zero):
                    Issue.record("two zero extents meet at block \(position)")
                case (.data(let backup, let first)?, .data(let nextBackup, let nextFirst)):
                    #expect(!(backup == nextBackup && nextFirst == first + previous!.blockCount), "at block \(position)")
                default:
                    break
                }
                for offset in 0..<extent.blockCount {
                    let block = extent.firstBlock + offset
                    switch extent.source {
                    case .zero:
                        #expect(sources[Int(block)]?.isData != true, "block \(block)")
                    case .data(let backup, let first):
                        #expect(sources[Int(block)]?.backup == backup && sources[Int(block)]?.isData == true, "block \(block)")
                        #expect(dataIndex[backup][block] == first + offset, "block \(block)")
                    }
                }
                position = extent.endBlock
                previous = extent
            }
            #expect(position == UInt64(sources.count))
        }
    }

    @Test("zero ranges that replace data stay holes in a restored file")
    func holesPreserved() throws {
        try withTemporaryDirectory { directory in
            let blockSize = 65536
            var generator = SeededGenerator(seed: 901)
            let day1 = generator.bytes(16 << 20)
            var day2 = day1
            // Day 2 keeps only the first 2 MiB and the last 1 MiB: the rest became zeros.
            for index in (2 << 20)..<(15 << 20) { day2[index] = 0 }
            let chain = try TestChain(days: [day1, day2], blockSize: blockSize, encodings: [.raw, .zstd(level: 3)], in: directory)
            let restored = "\(directory)/restored.img"
            let result = try ChainRestorer.restore(chain: chain.files, to: restored, logger: testLogger)
            #expect(firstDifference(try DiskImage.read(restored), day2) == nil)
            var info = stat()
            #expect(stat(restored, &info) == 0)
            // 3 MiB of data and some metadata; the 13 MiB of zeros were never written.
            #expect(Int(info.st_blocks) * 512 <= (3 << 20) + (256 << 10), "\(info.st_blocks) sectors allocated")
            #expect(result.writtenBytes == 3 << 20)
            #expect(result.supersededBlocks == 13 * 16)
        }
    }

    /// Restores `chain` in place over `stale` (longer than the volume), through `target`.
    private func overwriteStale(_ chain: TestChain, target: String, stale: [UInt8], backing: String) throws {
        let result = try ChainRestorer.overwrite(
            chain: chain.files, target: target,
            configuration: ParallelIOConfiguration(chunkSize: 4 * chain.blockSize, workerCount: 2), logger: testLogger)
        let expected = chain.days.last!
        let after = try DiskImage.read(backing)
        #expect(firstDifference(after[0..<expected.count], expected) == nil)
        #expect(firstDifference(after[expected.count...], stale[expected.count...]) == nil, "bytes past the volume are left alone")
        #expect(result.zeroedBytes > 0)
        #expect(result.writtenBytes + result.zeroedBytes == UInt64(expected.count))
    }

    @Test("an in-place restore over stale non-zero content leaves zeros where the volume has zeros")
    func overwriteStaleFile() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 902)
            let blockSize = 4096
            let days = TestChain.randomDays(count: 3, size: 60 * blockSize + 100, blockSize: blockSize, using: &generator)
            let chain = try TestChain(days: days, blockSize: blockSize, encodings: [.zstd(level: 1), .raw], in: directory)
            let target = "\(directory)/volume.dev"
            let stale = generator.bytes(days.last!.count + 3 * blockSize).map { $0 | 1 }
            try DiskImage.write(stale, to: target)
            try overwriteStale(chain, target: target, stale: stale, backing: target)
        }
    }

    @Test(
        "an in-place restore onto a block device zeroes stale content", .enabled(if: LoopDevice.isAvailable, "needs root and losetup"))
    func overwriteStaleDevice() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 903)
            let blockSize = 4096
            // The loop device is larger than the volume, and its end past the volume must be left alone.
            let days = TestChain.randomDays(count: 3, size: 300 * blockSize + 1024, blockSize: blockSize, using: &generator)
            let chain = try TestChain(days: days, blockSize: blockSize, encodings: [.raw, .zstd(level: 3)], in: directory)
            let backing = "\(directory)/volume.dev"
            let stale = generator.bytes(days.last!.count + 1024 + 4 * blockSize).map { $0 | 1 }
            try DiskImage.write(stale, to: backing)
            let device = try LoopDevice.attach(backing)
            defer { try? device.detach() }
            try overwriteStale(chain, target: device.path, stale: stale, backing: backing)
            try device.detach()
            #expect(firstDifference(try DiskImage.read(backing).prefix(days.last!.count), days.last!) == nil)
        }
    }

    /// A chain of three days where block `damagedBlock` of the Full is data on day 1 and either rewritten
    /// by day 2 (`superseded`) or left alone, with the Full's stored copy of it damaged.
    private func chainWithDamagedFull(superseded: Bool, in directory: String) throws -> (TestChain, damagedBlock: Int) {
        let blockSize = 4096
        var generator = SeededGenerator(seed: 904)
        let day1 = generator.bytes(40 * blockSize)
        var day2 = day1
        let damagedBlock = 10
        if superseded {
            day2.replaceSubrange((damagedBlock * blockSize)..<((damagedBlock + 1) * blockSize), with: generator.bytes(blockSize))
        } else {
            day2.replaceSubrange((30 * blockSize)..<(31 * blockSize), with: generator.bytes(blockSize))
        }
        var day3 = day2
        day3[35 * blockSize] ^= 1
        let chain = try TestChain(days: [day1, day2, day3], blockSize: blockSize, encodings: [.raw], in: directory)
        // The Full's data file is contiguous and every block is data: block 10 is at 128 + 10 × 4096.
        try corruptByte(of: chain.files[0].data, at: FormatHeader.size + damagedBlock * blockSize + 77)
        return (chain, damagedBlock)
    }

    @Test("a damaged block that a newer backup replaced does not fail the restore, but verify reports it")
    func damagedSupersededBlock() throws {
        try withTemporaryDirectory { directory in
            let (chain, damagedBlock) = try chainWithDamagedFull(superseded: true, in: directory)
            let restored = "\(directory)/restored.img"
            _ = try ChainRestorer.restore(chain: chain.files, to: restored, logger: testLogger)
            #expect(firstDifference(try DiskImage.read(restored), chain.days.last!) == nil)
            let error = #expect(throws: BlockDeltaError.self) { try ChainRestorer.verify(chain: chain.files) }
            #expect(error?.description.contains(chain.files[0].data) == true)
            #expect(error?.description.contains("volume block \(damagedBlock) ") == true, "\(String(describing: error))")
        }
    }

    @Test("a damaged block the restore needs fails it and leaves the target as it was")
    func damagedNeededBlock() throws {
        try withTemporaryDirectory { directory in
            let (chain, damagedBlock) = try chainWithDamagedFull(superseded: false, in: directory)
            let restored = "\(directory)/restored.img"
            let before: [UInt8] = Array("an older restore".utf8)
            try DiskImage.write(before, to: restored)
            let error = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.restore(chain: chain.files, to: restored, logger: testLogger)
            }
            #expect(error?.isDataIntegrityError == true)
            #expect(error?.description.hasPrefix(chain.files[0].data) == true, "\(String(describing: error))")
            #expect(error?.description.contains("volume block \(damagedBlock) ") == true)
            #expect(try DiskImage.read(restored) == before)
            #expect(!FileManager.default.fileExists(atPath: restored + ".osbackup-partial"))

            // In place: verified before anything is written, so the stale target keeps every byte.
            let target = "\(directory)/volume.dev"
            let stale = [UInt8](repeating: 0xA5, count: chain.days.last!.count)
            try DiskImage.write(stale, to: target)
            #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.overwrite(chain: chain.files, target: target, logger: testLogger)
            }
            #expect(firstDifference(try DiskImage.read(target), stale) == nil)

            // A new volume is checked as it is written: the damage still stops the restore, by name.
            let single = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.overwrite(chain: chain.files, target: target, verifyingFirst: false, logger: testLogger)
            }
            #expect(single?.description.contains("volume block \(damagedBlock) ") == true)
        }
    }

    @Test("an in-place restore that checks blocks as it writes them restores the same bytes")
    func overwriteWithoutVerifyingFirst() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 906)
            let blockSize = 8192
            let days = TestChain.randomDays(count: 4, size: 90 * blockSize + 333, blockSize: blockSize, using: &generator)
            let chain = try TestChain(days: days, blockSize: blockSize, encodings: [.zstd(level: 3), .raw], in: directory)
            let target = "\(directory)/volume.dev"
            let stale = generator.bytes(days.last!.count).map { $0 | 0x80 }
            try DiskImage.write(stale, to: target)
            let result = try ChainRestorer.overwrite(chain: chain.files, target: target, verifyingFirst: false, logger: testLogger)
            #expect(firstDifference(try DiskImage.read(target), days.last!) == nil)
            #expect(result.writtenBytes + result.zeroedBytes == UInt64(days.last!.count))
        }
    }

    @Test("a cancel stops a restore at the next chunk; a file restore leaves nothing behind")
    func cancellation() throws {
        try withTemporaryDirectory { directory in
            var generator = SeededGenerator(seed: 905)
            let blockSize = 4096
            let days = TestChain.randomDays(count: 2, size: 400 * blockSize, blockSize: blockSize, using: &generator)
            let chain = try TestChain(days: days, blockSize: blockSize, encodings: [.zstd(level: 1)], in: directory)
            let configuration = ParallelIOConfiguration(chunkSize: 4 * blockSize, workerCount: 2, chunksInFlight: 3)
            let chunksSeen = LockedValue(0)
            let control = CancelAfter(chunks: 2, seen: chunksSeen)

            let restored = "\(directory)/restored.img"
            let error = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.restore(
                    chain: chain.files, to: restored, configuration: configuration, control: control.control, logger: testLogger)
            }
            #expect(error?.isCancellation == true)
            #expect(chunksSeen.withLock { $0 } == 2)
            #expect(!FileManager.default.fileExists(atPath: restored))
            #expect(!FileManager.default.fileExists(atPath: restored + ".osbackup-partial"))

            let target = "\(directory)/volume.dev"
            try DiskImage.write([UInt8](repeating: 0xA5, count: days.last!.count), to: target)
            let second = CancelAfter(chunks: 3, seen: LockedValue(0))
            let inPlace = #expect(throws: BlockDeltaError.self) {
                try ChainRestorer.overwrite(
                    chain: chain.files, target: target, configuration: configuration, control: second.control, logger: testLogger)
            }
            #expect(inPlace?.isCancellation == true)
            // Cancelled during the verification: nothing was written.
            #expect(firstDifference(try DiskImage.read(target), [UInt8](repeating: 0xA5, count: days.last!.count)) == nil)
        }
    }
}

/// A control that cancels itself once `chunks` chunks have been reported.
private struct CancelAfter {
    let control: ScanControl

    init(chunks: Int, seen: LockedValue<Int>) {
        let box = LockedValue<ScanControl?>(nil)
        let made = ScanControl { _ in
            let count = seen.withLock { count in
                count += 1
                return count
            }
            if count >= chunks { box.withLock { $0?.cancel() } }
        }
        box.withLock { $0 = made }
        control = made
    }
}
