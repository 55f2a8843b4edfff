import Foundation

/// The plumbing shared by the Nova and Cinder clients: calls with the negotiated microversion header,
/// JSON bodies, expected statuses, and `*_links` pagination.
struct ServiceClient: Sendable {
    let session: KeystoneSession
    /// The official service type (`compute`, `block-storage`).
    let serviceType: String
    /// The microversion header's service name (`compute`, `volume`).
    let microversionService: String
    /// The negotiated microversion.
    let microversion: Microversion

    var headers: [(String, String)] {
        var headers = [("OpenStack-API-Version", "\(microversionService) \(microversion)")]
        if microversionService == "compute" { headers.append(("X-OpenStack-Nova-API-Version", "\(microversion)")) }
        return headers
    }

    /// Sends a call and checks its status; throws the service's error otherwise.
    func call(
        _ method: String, _ path: String, body: [String: Any]? = nil, expect: Set<Int>, isIdempotent: Bool? = nil
    ) async throws(OpenStackError) -> OpenStackResponse {
        let bytes = body.map { [UInt8]((try? JSONSerialization.data(withJSONObject: $0)) ?? Data()) }
        let response = try await session.send(
            serviceType: serviceType, method: method, path: path, headers: headers, body: bytes, isIdempotent: isIdempotent)
        guard expect.contains(response.status) else {
            throw .http(
                service: serviceType, operation: "\(method) \(OpenStackTransport.loggablePath(path))",
                status: response.status, requestID: response.requestID, body: response.body)
        }
        return response
    }

    /// Decodes `key` of a response body.
    func decode<Value: Decodable>(
        _ type: Value.Type, key: String, from response: OpenStackResponse, operation: String
    ) throws(OpenStackError) -> Value {
        do {
            // Only `key` is decoded: the body also holds other members (`*_links`, `count`).
            guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                let member = object[key]
            else {
                throw DecodingError.keyNotFound(AnyKey(key), .init(codingPath: [], debugDescription: "no '\(key)' in the body"))
            }
            let data = try JSONSerialization.data(withJSONObject: member, options: [.fragmentsAllowed])
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw .invalidResponse(
                service: serviceType, operation: operation, status: response.status, requestID: response.requestID,
                "cannot decode '\(key)': \(error)")
        }
    }

    /// GETs every page of a collection: follows the `<key>_links` `next` link until there is none or a
    /// page comes back empty (Nova and Cinder add a `next` link to every full page, even the last).
    func collect<Item: Decodable>(_ type: Item.Type, key: String, path: String) async throws(OpenStackError) -> [Item] {
        var items: [Item] = []
        var next: String? = path
        var pages = 0
        while let current = next {
            let response = try await call("GET", current, expect: [200])
            let page = try decode([Item].self, key: key, from: response, operation: "GET \(OpenStackTransport.loggablePath(current))")
            items += page
            pages += 1
            next = page.isEmpty ? nil : Self.nextLink(in: response.body, key: "\(key)_links")
            guard pages < 100_000 else { break }
        }
        return items
    }

    /// The `href` of the `next` entry of the `key` links array, if any.
    static func nextLink(in body: [UInt8], key: String) -> String? {
        guard case .array(let links)? = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(body)))?[key] else {
            return nil
        }
        return links.first { $0["rel"]?.stringValue == "next" }?["href"]?.stringValue
    }

    /// A query string from name/value pairs (nil values skipped).
    static func query(_ items: [(String, String?)]) -> String {
        var components = URLComponents()
        components.queryItems = items.compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
        let text = components.percentEncodedQuery ?? ""
        return text.isEmpty ? "" : "?" + text
    }

    /// Discovers the microversion range at `versionURL` (absolute) for the version id starting with `prefix`.
    static func discover(
        session: KeystoneSession, serviceType: String, versionURL: String, idPrefix: String
    ) async throws(OpenStackError) -> APIVersionRange {
        let response = try await session.send(serviceType: serviceType, method: "GET", path: versionURL)
        // Version documents answer 200, or 300 Multiple Choices at a root.
        guard response.status == 200 || response.status == 300 else {
            throw .http(service: serviceType, operation: "GET \(versionURL)", status: response.status, requestID: response.requestID, body: response.body)
        }
        guard let document = try? response.decode(VersionDocument.self), let range = document.range(idPrefix: idPrefix) else {
            throw .invalidResponse(
                service: serviceType, operation: "GET \(versionURL)", status: response.status, requestID: response.requestID,
                "no \(idPrefix) version in the version document")
        }
        return range
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
