import BackupEngine
import BlockDelta
import Foundation
import Testing

@Suite("Job limits: read rate, priorities")
struct JobLimitsTests {
    @Test("rates parse with binary suffixes; nonsense is refused with the option named", arguments: [
        ("200M", UInt64(200 << 20)), ("1.5G", UInt64(3 << 29)), ("512k", UInt64(512 << 10)), ("4096", UInt64(4096)), ("10MB", UInt64(10 << 20)),
    ])
    func rates(text: String, bytes: UInt64) throws {
        #expect(try ReadRateLimiter.parse(text) == bytes)
    }

    @Test("bad rates", arguments: ["", "fast", "-5M", "0", "1Q"])
    func badRates(text: String) {
        let error = #expect(throws: BlockDeltaError.self) { try ReadRateLimiter.parse(text) }
        #expect(error?.description.contains("--bwlimit") == true)
    }

    @Test("the limiter holds readers to the rate after a one-second burst, across several readers")
    func limiterHoldsTheRate() async throws {
        let limiter = ReadRateLimiter(bytesPerSecond: 4 << 20)
        let started = ContinuousClock.now
        // Two readers report 6 MiB each in 256 KiB chunks: 12 MiB at 4 MiB/s is 3 s, minus the 1 s burst.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    let progress = limiter.progress()
                    for chunk in 1...24 { progress(UInt64(chunk) * (256 << 10)) }
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(1900), "\(elapsed)")
    }

    @Test("ionice classes parse as ionice(1) names them; levels only where they exist")
    func ioClasses() throws {
        #expect(try ProcessPriority.parseIOClass("idle") == (.idle, 0))
        #expect(try ProcessPriority.parseIOClass("best-effort:7") == (.bestEffort, 7))
        #expect(try ProcessPriority.parseIOClass("be") == (.bestEffort, 4))
        #expect(try ProcessPriority.parseIOClass("2:0") == (.bestEffort, 0))
        for bad in ["idle:3", "best-effort:8", "fast", "realtime:x"] {
            #expect(throws: BlockDeltaError.self) { try ProcessPriority.parseIOClass(bad) }
        }
    }
}
