import Foundation
import OpenStackClient

/// The part of Keystone's v3 admin API the emulator needs in front of a real Keystone: find or create
/// projects, users, role assignments and application credentials; find, create, re-point and delete
/// regions, services and endpoints. Every call goes through a ``KeystoneSession`` (token renewal, retries).
struct KeystoneAdminAPI: Sendable {
    /// One catalog endpoint.
    struct Endpoint: Sendable, Equatable {
        var id: String
        var interface: String
        var url: String
    }

    let session: KeystoneSession

    var identityURL: String { session.configuration.identityURL }

    /// Sends one call; a status outside `accepted` throws with Keystone's own message.
    @discardableResult
    func call(_ method: String, _ path: String, body: JSON? = nil, accepted: Set<Int> = [200, 201, 204]) async throws -> JSON? {
        try await exchange(method, path, body: body, accepted: accepted).json
    }

    /// Sends one call and returns its status and JSON body; a status outside `accepted` throws with
    /// Keystone's own message. A cancelled task throws `CancellationError`, not a Keystone error.
    func exchange(
        _ method: String, _ path: String, body: JSON? = nil, accepted: Set<Int>
    ) async throws -> (status: Int, json: JSON?) {
        let operation = "\(method) /v3\(path.split(separator: "?").first.map(String.init) ?? path)"
        let response: OpenStackResponse
        do {
            response = try await session.send(
                serviceType: "identity", method: method, path: identityURL + path,
                headers: body == nil ? [] : [("Content-Type", "application/json")], body: body.map { Array($0.text.utf8) })
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw EmulatorError.externalKeystone(url: identityURL, operation: operation, "\(error)")
        }
        let json = response.body.isEmpty ? nil : try? JSON.parse(response.body)
        guard accepted.contains(response.status) else {
            let message = json?["error"]?["message"]?.string ?? String(decoding: response.body.prefix(200), as: UTF8.self)
            throw EmulatorError.externalKeystone(
                url: identityURL, operation: operation, "HTTP \(response.status): \(message)")
        }
        return (response.status, json)
    }

    /// The members of `collection` that match `filters` (`GET /v3/<collection>?k=v`).
    func list(_ collection: String, filters: [(String, String)] = []) async throws -> [JSON] {
        let query = filters.map { "\($0.0)=\(Self.encoded($0.1))" }.joined(separator: "&")
        let json = try await call("GET", "/\(collection)" + (query.isEmpty ? "" : "?" + query))
        return json?[collection]?.array ?? []
    }

    /// The id of the first member of `collection` matching `filters`, if any.
    func firstID(_ collection: String, filters: [(String, String)]) async throws -> String? {
        try await list(collection, filters: filters).first?["id"]?.string
    }

    /// Creates a member of `collection` (`POST /v3/<collection>` with `{"<member>": fields}`); returns its id.
    func create(_ collection: String, member: String, fields: [(String, JSON)]) async throws -> String {
        let json = try await call("POST", "/\(collection)", body: .object([(member, .object(fields))]), accepted: [201])
        guard let id = json?[member]?["id"]?.string else {
            throw EmulatorError.externalKeystone(
                url: identityURL, operation: "POST /v3/\(collection)", "the answer names no \(member) id")
        }
        return id
    }

    // MARK: Identity

    func projectID(named name: String) async throws -> String? {
        try await firstID("projects", filters: [("name", name), ("domain_id", "default")])
    }

    func userID(named name: String) async throws -> String? {
        try await firstID("users", filters: [("name", name), ("domain_id", "default")])
    }

    func roleID(named name: String) async throws -> String? {
        try await firstID("roles", filters: [("name", name)])
    }

    /// Grants `roleID` to `userID` on `projectID` (idempotent).
    func grant(roleID: String, userID: String, projectID: String) async throws {
        try await call("PUT", "/projects/\(projectID)/users/\(userID)/roles/\(roleID)", accepted: [204])
    }

    // MARK: Catalog

    /// Region `id`, or nil when there is none.
    func region(_ id: String) async throws -> JSON? {
        try await call("GET", "/regions/\(Self.encoded(id))", accepted: [200, 404])?["region"]
    }

    /// The endpoints of `serviceID` in `region`.
    func endpoints(serviceID: String, region: String) async throws -> [Endpoint] {
        try await list("endpoints", filters: [("service_id", serviceID), ("region_id", region)]).compactMap { json in
            guard let id = json["id"]?.string, let interface = json["interface"]?.string, let url = json["url"]?.string
            else { return nil }
            return Endpoint(id: id, interface: interface, url: url)
        }
    }

    /// Points endpoint `id` at `url`.
    func repoint(endpointID id: String, to url: String) async throws {
        try await call("PATCH", "/endpoints/\(id)", body: .object([("endpoint", .object([("url", .string(url))]))]))
    }

    /// Deletes `/v3/<collection>/<id>`; one that is already gone counts as deleted.
    func delete(_ collection: String, id: String) async throws {
        try await call("DELETE", "/\(collection)/\(Self.encoded(id))", accepted: [204, 404])
    }

    static func encoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
