public import BlockDelta

import Foundation

/// One temporary cloud resource a job creates: recorded before the call that creates it, given its id
/// once the call answers, and removed once the resource is gone.
public struct JournalEntry: Codable, Sendable, Hashable {
    /// What the resource is.
    public enum Kind: String, Codable, Sendable {
        /// A Cinder snapshot of an operator's volume.
        case snapshot
        /// A temporary Cinder volume made from a snapshot.
        case volume
        /// A temporary volume attached to the proxy server.
        case attachment
        /// A server a restore creates, until it is `ACTIVE` and released to the operator.
        case server
    }

    /// What the resource is.
    public var kind: Kind
    /// Its id; nil while its creation is under way (it is then found by ``requestTag``).
    public var id: String?
    /// The `osbackup_request` metadata value the create carries, to find a creation whose answer was lost.
    public var requestTag: String
    /// Its name (`osbackup-…` for temporary resources; a restored volume's or server's final name).
    public var name: String
    /// The operator's volume it was made for (for a server: its original server).
    public var sourceVolumeID: String
    /// For an attachment: the temporary volume's id.
    public var volumeID: String?
    /// For an attachment: the proxy server.
    public var serverID: String?

    /// Creates an entry.
    public init(
        kind: Kind, id: String?, requestTag: String, name: String, sourceVolumeID: String, volumeID: String? = nil,
        serverID: String? = nil
    ) {
        self.kind = kind
        self.id = id
        self.requestTag = requestTag
        self.name = name
        self.sourceVolumeID = sourceVolumeID
        self.volumeID = volumeID
        self.serverID = serverID
    }
}

/// The crash-safe record of the temporary resources of one job (`STATE/jobs/<job id>.journal`), held
/// under the job's lock (`STATE/jobs/<job id>.lock`) while the job lives.
///
/// Every change is written whole to a new file, synced, and renamed over the old one before the cloud
/// call it announces, so after a crash at any point the journal names every resource that may exist.
/// A journal whose lock nobody holds belongs to a job that died: the next job, and `osbackup cleanup`,
/// replay it (``ResourceSweeper``).
public final class ResourceJournal: Sendable {
    /// The job.
    public let jobID: String
    /// The proxy server the job ran on.
    public let proxyServerID: String
    /// The journal file.
    public let path: String
    private let entries: LockedValue<[UInt64: JournalEntry]>
    private let nextKey = LockedValue<UInt64>(0)
    private let lock: FileLock?
    private let saveLock = LockedValue(())

    /// The folder of journals and job locks in a state directory.
    public static func folder(stateDirectory: String) -> String { "\(stateDirectory)/jobs" }
    /// The journal of `jobID`.
    public static func path(stateDirectory: String, jobID: String) -> String { "\(folder(stateDirectory: stateDirectory))/\(jobID).journal" }
    /// The lock a live job holds.
    public static func lockPath(stateDirectory: String, jobID: String) -> String { "\(folder(stateDirectory: stateDirectory))/\(jobID).lock" }

    private struct Document: Codable {
        var format = "osbackup-resource-journal"
        var version = 1
        var jobID: String
        var proxyServerID: String
        var entries: [JournalEntry]
    }

    private init(jobID: String, proxyServerID: String, path: String, entries: [JournalEntry], lock: FileLock?) {
        self.jobID = jobID
        self.proxyServerID = proxyServerID
        self.path = path
        var keyed: [UInt64: JournalEntry] = [:]
        for (index, entry) in entries.enumerated() { keyed[UInt64(index)] = entry }
        self.entries = LockedValue(keyed)
        nextKey.withLock { $0 = UInt64(entries.count) }
        self.lock = lock
    }

    /// Starts the journal of a new job and takes its lock.
    public static func create(stateDirectory: String, jobID: String, proxyServerID: String) throws(BlockDeltaError) -> ResourceJournal {
        let folder = folder(stateDirectory: stateDirectory)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: folder, "cannot create the journal folder: \(error.localizedDescription)")
        }
        guard let lock = try FileLock.tryAcquire(lockPath(stateDirectory: stateDirectory, jobID: jobID)) else {
            throw .busy(path: lockPath(stateDirectory: stateDirectory, jobID: jobID), "job \(jobID) is already running")
        }
        let journal = ResourceJournal(
            jobID: jobID, proxyServerID: proxyServerID, path: path(stateDirectory: stateDirectory, jobID: jobID), entries: [],
            lock: lock)
        try journal.save()
        return journal
    }

    /// The journals of jobs that died (nobody holds their lock), each with its lock now taken by the caller.
    public static func orphans(stateDirectory: String) throws(BlockDeltaError) -> [ResourceJournal] {
        let folder = folder(stateDirectory: stateDirectory)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        var journals: [ResourceJournal] = []
        for name in names.sorted() where name.hasSuffix(".journal") {
            let jobID = String(name.dropLast(".journal".count))
            guard let lock = try FileLock.tryAcquire(lockPath(stateDirectory: stateDirectory, jobID: jobID)) else { continue }
            let file = "\(folder)/\(name)"
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let document: Document
            do {
                document = try JSONDecoder().decode(Document.self, from: data)
            } catch {
                throw .malformed(path: file, "is not a resource journal: \(error)", hint: "move it away, then run `osbackup cleanup` to find the tagged resources in the cloud")
            }
            journals.append(
                ResourceJournal(
                    jobID: document.jobID, proxyServerID: document.proxyServerID, path: file, entries: document.entries, lock: lock))
        }
        return journals
    }

    /// Whether job `jobID` is alive on this machine (its lock is held).
    public static func isLive(stateDirectory: String, jobID: String) -> Bool {
        let path = lockPath(stateDirectory: stateDirectory, jobID: jobID)
        guard FileManager.default.fileExists(atPath: path) else { return false }
        guard let lock = try? FileLock.tryAcquire(path) else { return true }
        lock.release()
        return false
    }

    /// Records a resource about to be created; returns its key for ``setID(_:for:)`` and ``remove(_:)``.
    public func record(_ entry: JournalEntry) throws(BlockDeltaError) -> UInt64 {
        let key = nextKey.withLock { value -> UInt64 in
            defer { value += 1 }
            return value
        }
        entries.withLock { $0[key] = entry }
        try save()
        return key
    }

    /// Notes the id the cloud gave a recorded resource.
    public func setID(_ id: String, for key: UInt64) throws(BlockDeltaError) {
        entries.withLock { $0[key]?.id = id }
        try save()
    }

    /// Forgets a resource that is gone.
    public func remove(_ key: UInt64) throws(BlockDeltaError) {
        entries.withLock { _ = $0.removeValue(forKey: key) }
        try save()
    }

    /// The resources still recorded, newest first (the order to undo them), with their keys.
    public var pending: [(key: UInt64, entry: JournalEntry)] {
        entries.withLock { $0.sorted { $0.key > $1.key }.map { (key: $0.key, entry: $0.value) } }
    }

    /// Removes the journal file once it is empty and releases the job's lock.
    public func close() {
        if pending.isEmpty {
            unlink(path)
            if let lock { unlink(lock.path) }
        }
        lock?.release()
    }

    private func save() throws(BlockDeltaError) {
        // Saves from parallel volume tasks are serialised, and each writes the state it read under the same
        // lock, so an older state never overwrites a newer one.
        try saveLock.withLock { _ -> Result<Void, BlockDeltaError> in
            let document = entries.withLock { entries in
                Document(jobID: jobID, proxyServerID: proxyServerID, entries: entries.sorted { $0.key < $1.key }.map(\.value))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do throws(BlockDeltaError) {
                guard let data = try? encoder.encode(document) else {
                    throw .failed(path: path, "cannot encode the journal")
                }
                try DurableFile.replace(Array(data), at: path, permissions: 0o600)
                return .success(())
            } catch {
                return .failure(error)
            }
        }.get()
    }

}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
