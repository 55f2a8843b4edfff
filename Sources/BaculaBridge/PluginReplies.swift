import BlockDelta
import Foundation

/// What the plugin sends while a backup runs, read on a thread of its own: the answers to `CHECK:` queries
/// (in the order they were asked) and the job's end (`JobEnd:OK|FAILED`). Waiters block their (scan or
/// job) thread until the answer comes or the stream fails.
final class PluginReplies: @unchecked Sendable {
    /// An answer to `CHECK:`: whether the catalog holds an earlier version of the file.
    enum CatalogAnswer: Sendable {
        case found(deltaSequence: Int)
        case none
    }

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var checks: [CatalogAnswer] = []
    private var jobEnd: Bool?
    private var failure: BackendProtocolError?

    /// Starts reading `reader` until the stream ends or fails.
    init(reader: BackendPacketReader) {
        let thread = Thread { [self] in read(reader) }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Waits for the next `CHECK:` answer.
    func nextCheck() throws(BackendProtocolError) -> CatalogAnswer {
        condition.lock()
        defer { condition.unlock() }
        while checks.isEmpty && failure == nil { condition.wait() }
        if !checks.isEmpty { return checks.removeFirst() }
        throw failure!
    }

    /// Waits for `JobEnd:`; true when the job went well.
    func waitForJobEnd() throws(BackendProtocolError) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while jobEnd == nil && failure == nil { condition.wait() }
        if let jobEnd { return jobEnd }
        throw failure!
    }

    private func read(_ reader: BackendPacketReader) {
        while true {
            let packet: BackendPacket?
            do throws(BackendProtocolError) {
                packet = try reader.next()
            } catch {
                fail(error)
                return
            }
            guard let packet else {
                fail(BackendProtocolError("the plugin closed the stream", offset: 0))
                return
            }
            let text = packet.text
            condition.lock()
            switch (packet.status, text) {
            case (.command, "CHECK:none"):
                checks.append(.none)
            case (.command, _) where text.hasPrefix("CHECK:found ") && Int(text.dropFirst("CHECK:found ".count)) != nil:
                checks.append(.found(deltaSequence: Int(text.dropFirst("CHECK:found ".count))!))
            case (.command, "JobEnd:OK"):
                jobEnd = true
            case (.command, "JobEnd:FAILED"):
                jobEnd = false
            default:
                failure = failure ?? BackendProtocolError("unexpected packet during a backup: \(packet.status) '\(text.prefix(80))'", offset: 0)
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func fail(_ error: BackendProtocolError) {
        condition.lock()
        failure = failure ?? error
        condition.broadcast()
        condition.unlock()
    }
}
