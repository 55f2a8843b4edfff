import BlockDelta
import Foundation
import Testing
import TestSupport

@Suite("Format primitives")
struct FormatTests {
    let descriptor = try! BackupDescriptor(
        geometry: VolumeGeometry(blockSize: 65536, volumeSize: 1_000_000), backupID: BackupID("01890000-0000-7000-8000-000000000002")!,
        parentID: BackupID("01890000-0000-7000-8000-000000000001")!, fullID: BackupID("01890000-0000-7000-8000-000000000001")!,
        level: .incremental, volumeID: "5f1c7b5e-8f0e-4a57-9d3b-0c6c1c7f2a10")

    @Test("SHA-256 matches the FIPS 180-2 test vector")
    func sha256Vector() {
        let hasher = SHA256Hasher()
        hasher.update(Array("abc".utf8))
        #expect("\(hasher.finalize())" == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // The hasher resets after finalize: the same input gives the same digest.
        hasher.update(Array("abc".utf8))
        #expect("\(hasher.finalize())" == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("zero detection finds the first non-zero byte anywhere", arguments: [0, 1, 4095, 65535])
    func zeroDetection(position: Int) {
        var bytes = [UInt8](repeating: 0, count: 65536)
        #expect(bytes.withUnsafeBytes { ZeroDetection.isAllZero($0) })
        bytes[position] = 1
        #expect(!bytes.withUnsafeBytes { ZeroDetection.isAllZero($0) })
    }

    @Test("header round-trips every field")
    func headerRoundTrip() throws {
        for kind in FormatKind.allCases {
            let bytes = FormatHeader(kind: kind, descriptor: descriptor).encoded()
            #expect(bytes.count == FormatHeader.size)
            let decoded = try FormatHeader(decoding: bytes, expecting: kind, path: "x")
            #expect(decoded.descriptor == descriptor)
        }
    }

    @Test("a header of another kind is named in the error")
    func wrongKind() {
        let bytes = FormatHeader(kind: .digestList, descriptor: descriptor).encoded()
        let error = #expect(throws: BlockDeltaError.self) {
            try FormatHeader(decoding: bytes, expecting: .hashMap, path: "/w/vol.map")
        }
        #expect(error?.description == "/w/vol.map: is a digest list file, expected a hash map file")
    }

    @Test("unknown versions, levels and empty ids are refused")
    func malformedHeaders() {
        let good = FormatHeader(kind: .regionList, descriptor: descriptor).encoded()
        for (offset, value, message) in [(8, UInt8(9), "format version"), (72, 7, "unknown level"), (73, 0, "volume id")] {
            var bytes = good
            bytes[offset] = value
            let error = #expect(throws: BlockDeltaError.self) {
                try FormatHeader(decoding: bytes, expecting: .regionList, path: "f.bmp")
            }
            #expect(error?.description.contains(message) == true)
        }
    }

    @Test("region records round-trip and reject bad kinds")
    func regionRecords() {
        let region = Region(firstBlock: 1 << 40, blockCount: 77, kind: .zero)
        let bytes = region.encoded()
        #expect(bytes.count == Region.encodedSize)
        #expect(bytes.withUnsafeBytes { Region(record: $0) } == region)
        var bad = bytes
        bad[12] = 9
        #expect(bad.withUnsafeBytes { Region(record: $0) } == nil)
    }

    @Test("geometry refuses block sizes that are not powers of two in range", arguments: [0, 1000, 2048, 65537, 128 << 20])
    func badBlockSizes(size: Int) {
        #expect(throws: BlockDeltaError.self) { try VolumeGeometry(blockSize: size, volumeSize: 1) }
    }

    @Test("geometry handles a short last block")
    func shortLastBlock() throws {
        let geometry = try VolumeGeometry(blockSize: 4096, volumeSize: 4096 * 3 + 10)
        #expect(geometry.blockCount == 4)
        #expect(geometry.length(ofBlock: 3) == 10)
        #expect(geometry.byteCount(ofBlocks: 2, count: 2) == 4106)
    }

    @Test("backup ids sort by time")
    func backupIDOrder() {
        let early = BackupID.generate(at: Date(timeIntervalSince1970: 1_000_000))
        let late = BackupID.generate(at: Date(timeIntervalSince1970: 2_000_000))
        #expect(early < late)
        #expect(BackupID("\(early)") == early)
        #expect("\(early)".dropFirst(14).first == "7")
    }
}
