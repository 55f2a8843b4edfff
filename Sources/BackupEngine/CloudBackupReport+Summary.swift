import Foundation

extension CloudBackupReport {
    /// The end-of-job table (standard error of `backup`, the Bacula job log): server, volume, level, bytes
    /// read and stored, seconds, result; then what was skipped, swept or not removed.
    public func summaryTable() -> String {
        let report = self
        var lines = ["job \(report.jobID)"]
        let header = ["server", "volume", "level", "read", "stored", "seconds", "result"]
        var rows: [[String]] = []
        for volume in report.volumes {
            rows.append([
                volume.serverName ?? "-", "\(volume.volumeName ?? "")(\(volume.volumeID.prefix(8)))", volume.level ?? "-",
                Self.bytes(volume.bytesRead), Self.bytes(volume.bytesStored), String(format: "%.1f", volume.seconds),
                volume.error.map { "FAILED: \($0)" } ?? "saved",
            ])
        }
        let widths = (0..<header.count - 1).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            lines.append(row.enumerated().map { index, cell in index < widths.count ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) : cell }.joined(separator: "  "))
        }
        for skipped in report.skipped { lines.append("skipped \(skipped.target): \(skipped.reason)") }
        if report.sweptResources > 0 { lines.append("swept \(report.sweptResources) temporary resources of earlier jobs") }
        for leftover in report.leftovers { lines.append("NOT REMOVED (retried by the next job or `osbackup cleanup`): \(leftover)") }
        let saved = report.volumes.filter(\.saved).count
        lines.append("\(saved) of \(report.volumes.count) volumes saved")
        return lines.joined(separator: "\n")
    }

    private static func bytes(_ count: UInt64) -> String {
        count >= 1 << 30 ? String(format: "%.1fG", Double(count) / Double(1 << 30))
            : count >= 1 << 20 ? String(format: "%.1fM", Double(count) / Double(1 << 20)) : "\(count)"
    }
}
