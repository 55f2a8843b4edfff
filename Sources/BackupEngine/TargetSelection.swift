public import OpenStackClient

import Foundation

/// One `--server` or `--exclude-server` value: a UUID, an exact name, or `re:REGEX` on the name.
public enum ServerSelector: Sendable, Hashable, CustomStringConvertible {
    /// A server UUID.
    case id(String)
    /// An exact server name.
    case name(String)
    /// A regular expression that must match the whole name.
    case pattern(String)

    /// Parses a selector; `re:` prefixes a regular expression, a UUID is an id, anything else a name.
    public static func parse(_ text: String) throws(BackupError) -> ServerSelector {
        if text.hasPrefix("re:") {
            let pattern = String(text.dropFirst(3))
            guard (try? NSRegularExpression(pattern: pattern)) != nil else {
                throw BackupError(.configuration, resource: "--server \(text)", "is not a valid regular expression")
            }
            return .pattern(pattern)
        }
        if UUID(uuidString: text) != nil { return .id(text.lowercased()) }
        guard !text.isEmpty else { throw BackupError(.configuration, resource: "--server", "is empty") }
        return .name(text)
    }

    /// Whether `server` is selected by this.
    public func matches(_ server: Server) -> Bool {
        switch self {
        case .id(let id): return server.id.lowercased() == id
        case .name(let name): return server.name == name
        case .pattern(let pattern):
            guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return false }
            return regex.firstMatch(in: server.name, range: NSRange(server.name.startIndex..., in: server.name)) != nil
        }
    }

    public var description: String {
        switch self {
        case .id(let id): return id
        case .name(let name): return name
        case .pattern(let pattern): return "re:\(pattern)"
        }
    }
}

/// What a job backs up, as the command line says it.
public struct TargetSelection: Sendable, Hashable {
    /// `--server` (repeatable); empty with no `--volume`: every server in scope.
    public var servers: [ServerSelector]
    /// `--exclude-server` (repeatable).
    public var excludedServers: [ServerSelector]
    /// `--volume` (repeatable): volume UUIDs.
    public var volumes: [String]
    /// `--unattached-volumes`: also every volume attached to no server.
    public var unattachedVolumes: Bool
    /// `--all-projects` (admin).
    public var allProjects: Bool

    /// Creates a selection.
    public init(
        servers: [ServerSelector] = [], excludedServers: [ServerSelector] = [], volumes: [String] = [],
        unattachedVolumes: Bool = false, allProjects: Bool = false
    ) {
        self.servers = servers
        self.excludedServers = excludedServers
        self.volumes = volumes.map { $0.lowercased() }
        self.unattachedVolumes = unattachedVolumes
        self.allProjects = allProjects
    }
}

/// A server to back up, with the volumes of it that are saved.
public struct ServerTarget: Sendable {
    /// The server as Nova described it.
    public var server: Server
    /// Its Cinder volumes to save, with their attachments (device, boot order).
    public var volumes: [Volume]
    /// Its attachments as Nova lists them.
    public var attachments: [VolumeAttachment]
    /// Its network interfaces (nil when Nova could not list them: the restore then needs `--network`).
    public var interfaces: [ServerInterface]?
}

/// Something that was deliberately not saved, and why.
public struct SkippedTarget: Sendable, Codable, Hashable {
    /// What it is (`server web-1 (uuid)`).
    public var target: String
    /// Why it was skipped.
    public var reason: String
}

/// What a selection resolves to in the cloud.
public struct ResolvedTargets: Sendable {
    /// Servers and their volumes.
    public var servers: [ServerTarget]
    /// Volumes attached to no server.
    public var unattachedVolumes: [Volume]
    /// What was skipped, with the reason.
    public var skipped: [SkippedTarget]
}

/// Resolves a ``TargetSelection`` against Nova and Cinder.
public enum TargetResolver {
    /// The name prefix of osbackup's own temporary resources; never a target.
    public static let temporaryPrefix = "osbackup-"

    /// Whether `volume` is a temporary volume of an osbackup job (named `osbackup-…` and tagged with its
    /// job): never a target, wherever it is attached. Another proxy's job attaches its temporary volumes
    /// to that proxy, a server like any other to this job; a snapshot of one would copy another server's
    /// disk into this backup and keep that job from deleting its volume.
    public static func isTemporary(_ volume: Volume) -> Bool {
        (volume.name ?? "").hasPrefix(temporaryPrefix) && volume.metadata?[CloudTags.job] != nil
    }

    /// Lists what the selection names; an explicitly named server or volume that does not exist is an error.
    public static func resolve(
        _ selection: TargetSelection, cloud: CloudServices, proxyServerID: String
    ) async throws(BackupError) -> ResolvedTargets {
        do {
            let servers = try await cloud.compute.servers(ServerFilter(allProjects: selection.allProjects))
            let volumes = try await cloud.blockStorage.volumes(VolumeFilter(allProjects: selection.allProjects))
            var byID: [String: Volume] = [:]
            for volume in volumes { byID[volume.id.lowercased()] = volume }
            var skipped: [SkippedTarget] = []

            for selector in selection.servers where !servers.contains(where: selector.matches) {
                if case .pattern = selector { continue }
                throw BackupError(
                    .notFound, resource: "server \(selector)", "no such server in scope",
                    hint: selection.allProjects ? "check the name or UUID" : "check the name or UUID; servers of other projects need --all-projects (admin)")
            }
            for id in selection.volumes where byID[id] == nil {
                throw BackupError(
                    .notFound, resource: "volume \(id)", "no such volume in scope",
                    hint: selection.allProjects ? "check the UUID" : "check the UUID; volumes of other projects need --all-projects (admin)")
            }

            let everything = selection.servers.isEmpty && selection.volumes.isEmpty
            var targets: [ServerTarget] = []
            for server in servers.sorted(by: { ($0.name, $0.id) < ($1.name, $1.id) }) {
                let named = selection.servers.contains { $0.matches(server) }
                let wantedVolumes = Set(server.attachedVolumes.map { $0.id.lowercased() }).intersection(selection.volumes)
                guard everything || named || !wantedVolumes.isEmpty else { continue }
                if selection.excludedServers.contains(where: { $0.matches(server) }) {
                    skipped.append(SkippedTarget(target: "server \(server.name) (\(server.id))", reason: "excluded by --exclude-server"))
                    continue
                }
                if server.id == proxyServerID && !named {
                    skipped.append(SkippedTarget(target: "server \(server.name) (\(server.id))", reason: "the proxy server itself (name it with --server to save it)"))
                    continue
                }
                if let image = server.imageID, !image.isEmpty {
                    skipped.append(
                        SkippedTarget(
                            target: "server \(server.name) (\(server.id)) root disk",
                            reason: "image-backed (ephemeral) root disk of image \(image): not a Cinder volume, not saved; its Cinder volumes are"))
                }
                let attachments = try await cloud.compute.volumeAttachments(serverID: server.id)
                var interfaces: [ServerInterface]?
                do {
                    interfaces = try await cloud.compute.interfaces(serverID: server.id)
                } catch {
                    // Without Neutron behind Nova the ports cannot be listed; the backup goes on without them.
                    if error.isCancellation { throw error }
                }
                var saved: [Volume] = []
                for attached in server.attachedVolumes {
                    let id = attached.id.lowercased()
                    guard named || everything || wantedVolumes.contains(id) else { continue }
                    guard let volume = byID[id] else {
                        skipped.append(SkippedTarget(target: "volume \(attached.id) of server \(server.name)", reason: "not visible in Cinder with these credentials"))
                        continue
                    }
                    if isTemporary(volume) {
                        skipped.append(
                            SkippedTarget(
                                target: "volume \(volume.name ?? volume.id) (\(volume.id)) of server \(server.name)",
                                reason: "a temporary volume of osbackup job \(volume.metadata?[CloudTags.job] ?? "?") (a backup or restore under way on that proxy)"))
                        continue
                    }
                    saved.append(volume)
                }
                if saved.isEmpty && (server.imageID ?? "").isEmpty {
                    skipped.append(SkippedTarget(target: "server \(server.name) (\(server.id))", reason: "no Cinder volume attached"))
                }
                targets.append(ServerTarget(server: server, volumes: saved, attachments: attachments, interfaces: interfaces))
            }

            var unattached: [Volume] = []
            for volume in volumes.sorted(by: { $0.id < $1.id }) where volume.attachments.isEmpty {
                guard !isTemporary(volume) else { continue }
                if selection.unattachedVolumes || selection.volumes.contains(volume.id.lowercased()) {
                    unattached.append(volume)
                }
            }
            return ResolvedTargets(servers: targets, unattachedVolumes: unattached, skipped: skipped)
        } catch {
            throw BackupError.from(error, resource: "target selection")
        }
    }
}

/// The metadata keys osbackup tags its temporary resources with.
public enum CloudTags {
    /// The job that made the resource.
    public static let job = "osbackup_job"
    /// The proxy server the job ran on.
    public static let proxy = "osbackup_proxy"
    /// The operator's volume the resource was made for.
    public static let sourceVolume = "osbackup_source_volume"
    /// The request tag of the create (the client's idempotency key).
    public static let request = "osbackup_request"
    /// On a restored volume: the volume it was backed up from (kept: provenance for the operator).
    public static let restoredFrom = "osbackup_restored_from"
    /// On a restored volume: the volume backup it was restored from.
    public static let restoredBackup = "osbackup_restored_backup"
}
