public import BackupEngine
public import BlockDelta

import Foundation

/// Where a Bacula restore's files land before anything is restored: one job folder per delta sequence
/// (`gen-0` holds every Full part and the `.name`/`.conf`/flavor files, `gen-1` the first Incremental
/// parts…), so that each part keeps its own `.bmp`, `.bmpsha` and `.bvmdk` however many parts of a
/// volume arrive. ``repository()`` turns the generations into a spool repository whose chains the
/// ordinary restores read; nothing is written to a target until a whole chain is there and verified.
public final class BaculaRestoreSpool: @unchecked Sendable {
    /// The spool folder (removed by ``remove()``).
    public let folder: String
    private var generations: Set<Int> = []

    /// A spool in a new folder below `directory`.
    public init(directory: String) throws(BlockDeltaError) {
        folder = "\(directory)/restore-\(BackupID.generate())"
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: folder, "cannot create the restore spool: \(error.localizedDescription)", hint: "check the state directory")
        }
    }

    /// The local path for file `name` (a Bacula name, `/@openstack/…`) of delta sequence `sequence`, its
    /// folders made; nil for a name outside the backup namespace (the plugin then skips the file).
    public func path(for name: String, sequence: Int) throws(BlockDeltaError) -> String? {
        let relative = String(name.drop { $0 == "/" })
        guard NamespacePath.isContained(relative), relative.hasPrefix("\(BackupNamespace.root)/") || relative.hasPrefix("@local/"),
            (0...100_000).contains(sequence)
        else { return nil }
        generations.insert(sequence)
        let path = "\(folder)/gen-\(sequence)/\(relative)"
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: path, "cannot create the folder: \(error.localizedDescription)")
        }
        return path
    }

    /// The spool as a repository: each generation a job, its manifest rebuilt from its files, the
    /// `.name`, `.conf` and flavor files of generation 0 copied into every later one (the newest job then
    /// describes every folder).
    public func repository() throws(BlockDeltaError) -> BackupRepository {
        let repository = try BackupRepository(directory: "\(folder)/repository", create: true)
        let ordered = generations.sorted()
        let shared = try sharedFiles(in: "\(folder)/gen-0")
        for generation in ordered where generation != 0 {
            let source = "\(folder)/gen-\(generation)"
            for relative in shared {
                let destination = "\(source)/\(relative)"
                try? FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: destination) {
                    do {
                        try FileManager.default.copyItem(atPath: "\(folder)/gen-0/\(relative)", toPath: destination)
                    } catch {
                        throw .failed(path: destination, "cannot copy into the spool: \(error.localizedDescription)")
                    }
                }
            }
        }
        for (index, generation) in ordered.enumerated() {
            let source = "\(folder)/gen-\(generation)"
            // Job ids in generation order: the newest generation is the newest job.
            let jobID = try BackupID.ordered(index)
            let manifest = try JobManifestReconstruction.manifest(ofFolder: source, jobID: jobID, recordedJobID: jobID)
            let pending = try repository.beginJob(jobID)
            try? FileManager.default.removeItem(atPath: pending.folder)
            guard rename(source, pending.folder) == 0 else { throw .io("rename to \(pending.folder)", path: source, errno: errno) }
            try repository.commitJob(manifest, pending: pending)
        }
        return repository
    }

    /// Removes the spool.
    public func remove() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func sharedFiles(in folder: String) throws(BlockDeltaError) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        var files: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let isVolumePart = [".bmp", ".bmpsha", ".bvmdk"].contains { relative.hasSuffix($0) }
            var isDirectory: ObjCBool = false
            if !isVolumePart, FileManager.default.fileExists(atPath: "\(folder)/\(relative)", isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(relative)
            }
        }
        return files
    }
}

extension BackupID {
    /// The `index`-th of a series of ids that sort in order (the spool's generations).
    static func ordered(_ index: Int) throws(BlockDeltaError) -> BackupID {
        guard let id = BackupID(String(format: "00000000-0000-7000-8000-%012x", index)) else {
            throw .failed(path: "restore spool", "cannot make a job id for generation \(index)")
        }
        return id
    }
}

#if canImport(Glibc)
import Glibc
#endif
