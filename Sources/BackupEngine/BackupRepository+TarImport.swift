public import BlockDelta

/// Tar streams into a directory repository: how `restore --from TARFILE` reads a chain of streams.
extension BackupRepository {
    /// Extracts one tar stream of `backup --to -` into a new job folder of this repository (its data is
    /// spooled here: the repository needs free space for it), rebuilds its manifest
    /// (``JobManifestReconstruction``) and publishes the job; returns the manifest. Nothing is written
    /// outside the new folder, and a stream that is refused or damaged leaves no folder behind.
    public func importTar(_ input: TarInput) throws(BlockDeltaError) -> BackupJobManifest {
        let provisional = BackupID.generate()
        let pending = try beginJob(provisional)
        do throws(BlockDeltaError) {
            let summary = try TarExtraction.extract(input, into: pending.folder)
            let manifest = try JobManifestReconstruction.manifest(
                ofFolder: pending.folder, jobID: provisional, recordedJobID: summary.jobID.flatMap(BackupID.init))
            if let id = manifest.id, containsJob(id) {
                throw BlockDeltaError.invalidArgument(
                    "\(input.name) holds job \(id) again (its volume backups are already read from an earlier source)",
                    path: input.name, hint: "give each backup once")
            }
            try commitJob(manifest, pending: pending)
            return manifest
        } catch {
            abandonJob(pending)
            throw error
        }
    }
}
