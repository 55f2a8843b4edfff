import BackupEngine
import BlockDelta
import Foundation

/// The progress line of a backup on a terminal: each volume being read with its share done, and the job's
/// read rate, redrawn in place at most four times a second on standard error. Off a terminal it stays
/// silent: the log's line per volume and the summary table say what happened.
final class ProgressBoard: Sendable {
    private struct State {
        var volumes: [String: VolumeProgress] = [:]
        var order: [String] = []
        var lastDraw = ContinuousClock.now - .seconds(1)
        var drawn = false
    }

    private let state = LockedValue(State())
    private let started = ContinuousClock.now

    /// A board when standard error is a terminal, else nil.
    static func forTerminal() -> ProgressBoard? { isatty(STDERR_FILENO) == 1 ? ProgressBoard() : nil }

    /// Records a volume's progress and redraws when due.
    func update(_ progress: VolumeProgress) {
        let line: String? = state.withLock { state in
            if state.volumes[progress.volumeID] == nil { state.order.append(progress.volumeID) }
            state.volumes[progress.volumeID] = progress
            let now = ContinuousClock.now
            guard now - state.lastDraw >= .milliseconds(250) else { return nil }
            state.lastDraw = now
            state.drawn = true
            return render(state)
        }
        if let line { FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8)) }
    }

    /// Clears the line before the summary table.
    func finish() {
        let drawn = state.withLock { $0.drawn }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func render(_ state: State) -> String {
        let running = state.order.compactMap { state.volumes[$0] }.filter { progress in
            progress.bytesTotal.map { progress.bytesDone < $0 } ?? true
        }
        let total = state.volumes.values.reduce(UInt64(0)) { $0 + $1.bytesDone }
        let seconds = max(0.001, Double((ContinuousClock.now - started).components.seconds) + Double((ContinuousClock.now - started).components.attoseconds) / 1e18)
        let cells = running.suffix(4).map { progress -> String in
            let share = progress.bytesTotal.map { $0 > 0 ? " \(progress.bytesDone * 100 / $0)%" : "" } ?? ""
            return "\(progress.volumeID.prefix(8))\(share)"
        }
        return "reading \(cells.joined(separator: "  "))  \(String(format: "%.0f", Double(total) / seconds / 1_048_576)) MiB/s"
    }
}
