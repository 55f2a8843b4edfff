import Foundation

extension CloudBackupReport {
    /// The end-of-job table (standard error of `backup`, the Bacula job log): server, volume, level, bytes
    /// read and stored, seconds (all, waiting on OpenStack, scanning), result; then the job's totals and what
    /// was skipped, swept or not removed.
    public func summaryTable() -> String {
        let report = self
        var lines = ["job \(report.jobID)"]
        let header = ["server", "volume", "level", "read", "stored", "seconds", "openstack", "scan", "result"]
        var rows: [[String]] = []
        for volume in report.volumes {
            rows.append([
                volume.serverName ?? "-", "\(volume.volumeName ?? "")(\(volume.volumeID.prefix(8)))", volume.level ?? "-",
                Self.bytes(volume.bytesRead), Self.bytes(volume.bytesStored), Self.seconds(volume.seconds),
                Self.seconds(volume.timings.openStackWaitSeconds), Self.seconds(volume.timings.scanSeconds),
                volume.error.map { "FAILED: \($0)" } ?? "saved",
            ])
        }
        let widths = (0..<header.count - 1).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            lines.append(row.enumerated().map { index, cell in index < widths.count ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0) : cell }.joined(separator: "  "))
        }
        lines.append(totalsLine())
        for skipped in report.skipped { lines.append("skipped \(skipped.target): \(skipped.reason)") }
        if report.sweptResources > 0 { lines.append("swept \(report.sweptResources) temporary resources of earlier jobs") }
        for leftover in report.leftovers { lines.append("NOT REMOVED (retried by the next job or `osbackup cleanup`): \(leftover)") }
        let saved = report.volumes.filter(\.saved).count
        lines.append("\(saved) of \(report.volumes.count) volumes saved")
        return lines.joined(separator: "\n")
    }

    /// The job's totals in one line: wall time and read rate, then the volumes' seconds summed by kind.
    func totalsLine() -> String {
        let totals = self.totals
        let rate = totals.seconds > 0 ? Double(totals.bytesRead) / totals.seconds / 1e6 : 0
        return "total: \(Self.bytes(totals.bytesRead)) read, \(Self.bytes(totals.bytesStored)) stored in \(Self.seconds(totals.seconds)) s"
            + " (\(String(format: "%.0f", rate)) MB/s read); summed over volumes: \(Self.seconds(totals.openStackWaitSeconds)) s waiting on"
            + " OpenStack, \(Self.seconds(totals.scanSeconds)) s scanning, \(Self.seconds(totals.attachSlotWaitSeconds)) s waiting for an attach slot"
    }

    private static func seconds(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func bytes(_ count: UInt64) -> String {
        count >= 1 << 30 ? String(format: "%.1fG", Double(count) / Double(1 << 30))
            : count >= 1 << 20 ? String(format: "%.1fM", Double(count) / Double(1 << 20)) : "\(count)"
    }
}
