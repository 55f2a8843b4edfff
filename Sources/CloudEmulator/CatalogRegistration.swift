import Foundation
import Logging

/// Registers the emulator's compute, volumev3 and block-storage endpoints in a region of the external
/// Keystone's catalog, and puts the catalog back at stop.
///
/// Every change is written to a journal (`keystone-catalog.json` in the state directory) *before* it is
/// made, so a start after a crash at any point first undoes what the crashed run left:
/// - a creation whose answer was lost is found again by what identifies it (an endpoint by service,
///   interface and the emulator's URL; a service or region by the marker in its description);
/// - a re-pointed endpoint is restored only while it still points at the emulator (a later change by
///   someone else stays), and one deleted meanwhile is forgotten;
/// - a service the emulator created is deleted only when no endpoint of anybody else uses it, and a
///   region only when Keystone agrees (it refuses while the region has endpoints).
struct CatalogRegistration {
    /// What the emulator changed, or is about to change, in the catalog.
    struct Journal: Codable, Sendable {
        /// An endpoint the emulator created (`originalURL` nil) or re-pointed.
        struct Endpoint: Codable, Sendable {
            var serviceID: String
            var interface: String
            /// The URL it points at the emulator with.
            var url: String
            /// Its id; nil while its creation is under way.
            var id: String?
            /// The URL it had before the emulator re-pointed it.
            var originalURL: String?
        }

        /// A service the emulator created; `id` nil while its creation is under way.
        struct Service: Codable, Sendable {
            var type: String
            var id: String?
        }

        /// The Keystone the changes were made in.
        var keystoneURL: String
        /// The region of the endpoints.
        var region: String
        /// Whether the emulator created the region (or was about to).
        var createdRegion = false
        var services: [Service] = []
        var endpoints: [Endpoint] = []
    }

    static let journalName = "keystone-catalog.json"

    let api: KeystoneAdminAPI
    let stateDirectory: String
    let logger: Logger

    private var journalPath: String { stateDirectory + "/" + Self.journalName }
    /// The description of the services and regions the emulator creates, to find them again.
    private var marker: String { "osbackup emulator (state \(stateDirectory))" }

    /// The services and URLs the emulator at `baseURL` offers (Keystone fills in `$(project_id)s`).
    static func services(baseURL: String) -> [(type: String, name: String, url: String)] {
        let volume = baseURL + "/volume/v3/$(project_id)s"
        return [("compute", "nova", baseURL + "/compute/v2.1"), ("volumev3", "cinderv3", volume), ("block-storage", "cinder", volume)]
    }

    /// Points the region's endpoints of each service at the emulator (creating region, services and
    /// endpoints where missing). Call ``withdraw()`` first: it undoes what an earlier run left.
    func register(baseURL: String, region: String) async throws {
        var journal = Journal(keystoneURL: api.identityURL, region: region)
        if try await api.region(region) == nil {
            journal.createdRegion = true
            try save(journal)
            _ = try await api.create("regions", member: "region", fields: [("id", .string(region)), ("description", .string(marker))])
        }
        for service in Self.services(baseURL: baseURL) {
            let serviceID: String
            if let id = try await api.firstID("services", filters: [("type", service.type)]) {
                serviceID = id
            } else {
                journal.services.append(.init(type: service.type))
                try save(journal)
                serviceID = try await api.create(
                    "services", member: "service",
                    fields: [
                        ("type", .string(service.type)), ("name", .string(service.name)), ("enabled", .bool(true)),
                        ("description", .string(marker)),
                    ])
                journal.services[journal.services.count - 1].id = serviceID
                try save(journal)
            }
            let existing = try await api.endpoints(serviceID: serviceID, region: region)
            for interface in ["public", "internal", "admin"] {
                if let endpoint = existing.first(where: { $0.interface == interface }) {
                    guard endpoint.url != service.url else { continue }
                    journal.endpoints.append(
                        .init(serviceID: serviceID, interface: interface, url: service.url, id: endpoint.id, originalURL: endpoint.url))
                    try save(journal)
                    try await api.repoint(endpointID: endpoint.id, to: service.url)
                } else {
                    journal.endpoints.append(.init(serviceID: serviceID, interface: interface, url: service.url))
                    try save(journal)
                    let id = try await api.create(
                        "endpoints", member: "endpoint",
                        fields: [
                            ("service_id", .string(serviceID)), ("interface", .string(interface)), ("url", .string(service.url)),
                            ("region_id", .string(region)),
                        ])
                    journal.endpoints[journal.endpoints.count - 1].id = id
                    try save(journal)
                }
            }
        }
        logger.info(
            "endpoints registered in Keystone",
            metadata: ["osb-keystone": "\(api.identityURL)", "osb-region": "\(region)", "osb-url": "\(baseURL)"])
    }

    /// Undoes every change of the journal, endpoints first, and removes the journal once all are undone.
    /// A network failure leaves the rest in the journal for the next start.
    func withdraw() async throws {
        guard var journal = try load() else { return }
        guard journal.keystoneURL == api.identityURL else {
            throw EmulatorError.externalKeystone(
                url: api.identityURL, operation: "putting the catalog back",
                "\(journalPath) records changes made in the Keystone at \(journal.keystoneURL); start once with --keystone \(journal.keystoneURL) to undo them, or remove the journal if that Keystone is gone")
        }
        while let endpoint = journal.endpoints.last {
            try await undo(endpoint, region: journal.region)
            journal.endpoints.removeLast()
            try save(journal)
        }
        while let service = journal.services.last {
            try await undo(service)
            journal.services.removeLast()
            try save(journal)
        }
        if journal.createdRegion {
            if try await api.region(journal.region)?["description"]?.string == marker {
                let deletion = try await api.exchange(
                    "DELETE", "/regions/\(KeystoneAdminAPI.encoded(journal.region))", accepted: [204, 404, 403, 409])
                if deletion.status == 403 || deletion.status == 409 {
                    logger.warning(
                        "the region the emulator created is kept: Keystone refuses to delete it (it has endpoints or subregions)",
                        metadata: ["osb-region": "\(journal.region)"])
                }
            }
        }
        try? FileManager.default.removeItem(atPath: journalPath)
        logger.info("Keystone catalog put back as the emulator found it", metadata: ["osb-keystone": "\(api.identityURL)"])
    }

    private func undo(_ endpoint: Journal.Endpoint, region: String) async throws {
        if let originalURL = endpoint.originalURL, let id = endpoint.id {
            let current = try await api.exchange("GET", "/endpoints/\(id)", accepted: [200, 404])
            // Deleted meanwhile, or the crash came before the re-pointing: nothing to undo.
            guard let url = current.json?["endpoint"]?["url"]?.string, url != originalURL else { return }
            if url == endpoint.url {
                try await api.repoint(endpointID: id, to: originalURL)
            } else {
                logger.warning(
                    "an endpoint the emulator re-pointed was changed since; it is left as it is",
                    metadata: ["osb-endpoint": "\(id)", "osb-url": "\(url)"])
            }
        } else if let id = endpoint.id {
            try await api.delete("endpoints", id: id)
        } else {
            // The creation's answer was lost: find it by what identifies it.
            for found in try await api.endpoints(serviceID: endpoint.serviceID, region: region)
            where found.interface == endpoint.interface && found.url == endpoint.url {
                try await api.delete("endpoints", id: found.id)
            }
        }
    }

    private func undo(_ service: Journal.Service) async throws {
        var ids = service.id.map { [$0] } ?? []
        if service.id == nil {
            ids = try await api.list("services", filters: [("type", service.type)])
                .filter { $0["description"]?.string == marker }.compactMap { $0["id"]?.string }
        }
        for id in ids {
            // Deleting a service deletes its endpoints: only when nobody else has one there.
            let others = try await api.list("endpoints", filters: [("service_id", id)])
            if others.isEmpty {
                try await api.delete("services", id: id)
            } else {
                logger.warning(
                    "the service the emulator created is kept: other endpoints use it now",
                    metadata: ["osb-service": "\(service.type)", "osb-endpoints": "\(others.count)"])
            }
        }
    }

    private func load() throws -> Journal? {
        guard FileManager.default.fileExists(atPath: journalPath) else { return nil }
        do {
            return try JSONDecoder().decode(Journal.self, from: Data(contentsOf: URL(fileURLWithPath: journalPath)))
        } catch {
            throw EmulatorError.invalidFile(path: journalPath, what: "Keystone catalog journal", reason: "\(error)")
        }
    }

    private func save(_ journal: Journal) throws {
        do {
            try JSONEncoder().encode(journal).write(to: URL(fileURLWithPath: journalPath), options: .atomic)
        } catch {
            throw EmulatorError.stateWrite(path: journalPath, underlying: error)
        }
    }
}
