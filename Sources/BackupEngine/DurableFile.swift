public import BlockDelta

/// Small files written so that they survive a crash: whole, synced, and (for replacements) renamed into
/// place, never half-written.
public enum DurableFile {
    /// Creates or truncates `path`, writes `bytes`, and syncs the file (not its folder).
    public static func write(_ bytes: [UInt8], to path: String, permissions: UInt32 = 0o640) throws(BlockDeltaError) {
        let file = try OpenFile.openForWriting(path, create: true, truncate: true, permissions: permissions)
        do throws(BlockDeltaError) {
            let failure = bytes.withUnsafeBytes { buffer -> BlockDeltaError? in
                do throws(BlockDeltaError) {
                    try file.write(buffer, at: 0)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
            try file.sync()
            try file.close()
        } catch {
            try? file.close()
            throw error
        }
    }

    /// Replaces `path` atomically: the bytes go to `path.partial`, are synced, renamed over `path`, and the
    /// folder is synced, so a reader (or a start after a crash) sees the old content or the new, whole.
    public static func replace(_ bytes: [UInt8], at path: String, permissions: UInt32 = 0o640) throws(BlockDeltaError) {
        let staging = path + ".partial"
        try write(bytes, to: staging, permissions: permissions)
        guard rename(staging, path) == 0 else { throw .io("rename to \(path)", path: staging, errno: errno) }
        try syncDirectory((path as NSString).deletingLastPathComponent)
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
