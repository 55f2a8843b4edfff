import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation

/// What a backup (or an estimate) covers: the selection options of `backup` and `estimate`.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Server to save: UUID, exact name, or re:REGEX (repeatable). Default: every server in scope.")
    var server: [String] = []

    @Option(help: "Server not to save, same forms (repeatable).")
    var excludeServer: [String] = []

    @Option(help: "Volume UUID to save (repeatable).")
    var volume: [String] = []

    @Flag(help: "Also save the volumes attached to no server.")
    var unattachedVolumes = false

    @Flag(help: "Servers and volumes of every project (admin role).")
    var allProjects = false

    /// The selection, checked: selectors parse, volume ids are UUIDs.
    func selection() throws -> TargetSelection {
        for id in volume where UUID(uuidString: id) == nil { throw ValidationError("--volume '\(id)' is not a UUID") }
        return TargetSelection(
            servers: try server.map { try ServerSelector.parse($0) }, excludedServers: try excludeServer.map { try ServerSelector.parse($0) },
            volumes: volume, unattachedVolumes: unattachedVolumes, allProjects: allProjects)
    }
}

/// `--level`: full, incremental or differential, or a usage error saying so.
func parseLevel(_ name: String) throws -> BackupLevel {
    guard let level = BackupLevel(name: name) else {
        throw ValidationError("unknown level '\(name)': use full, incremental or differential")
    }
    return level
}
