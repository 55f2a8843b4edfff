import Foundation

/// One HTTP request as the emulator's services see it: method, path segments, decoded query, headers
/// (names lower-cased) and body.
struct EmulatorRequest: Sendable {
    var method: String
    var path: String
    var segments: [String]
    var query: [(String, String)]
    var headers: [String: String]
    var body: [UInt8]
    /// The `x-openstack-request-id` the response will carry.
    var requestID: String
    /// With an external Keystone: what it said about the request's token (nil: not asked).
    var externalAuthentication: ExternalAuthentication?

    init(method: String, path: String, rawQuery: String?, headers: [String: String], body: [UInt8]) {
        self.method = method
        self.path = path
        self.segments = path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        self.query = EmulatorRequest.decodeQuery(rawQuery ?? "")
        self.headers = headers
        self.body = body
        self.requestID = "req-" + UUID().uuidString.lowercased()
    }

    /// The header `name` (case-insensitive).
    func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The first value of query parameter `name`.
    func queryValue(_ name: String) -> String? { query.first { $0.0 == name }?.1 }

    /// Whether the query has parameter `name` (with or without a value).
    func hasQuery(_ name: String) -> Bool { query.contains { $0.0 == name } }

    /// The body as JSON, or nil when it is empty or not JSON.
    func jsonBody() -> JSON? {
        guard !body.isEmpty else { return nil }
        return try? JSON.parse(body)
    }

    private static func decodeQuery(_ raw: String) -> [(String, String)] {
        raw.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}

/// The emulator's answer: status, headers and an optional body (JSON or text).
struct EmulatorResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    init(status: Int, headers: [(String, String)] = [], json: JSON?) {
        self.status = status
        self.headers = headers
        if let json {
            self.body = Array(json.text.utf8)
            self.headers.append(("Content-Type", "application/json"))
        } else {
            self.body = []
        }
    }

    init(status: Int, headers: [(String, String)] = [], text: String, contentType: String = "text/plain") {
        self.status = status
        self.headers = headers + [("Content-Type", contentType)]
        self.body = Array(text.utf8)
    }

    /// Adds a header.
    func adding(_ name: String, _ value: String) -> EmulatorResponse {
        var copy = self
        copy.headers.append((name, value))
        return copy
    }

    /// The value of header `name` (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// The error body shapes of Nova and Cinder (`{"badRequest":{"code":400,"message":"..."}}`).
enum ServiceFault {
    /// The fault name Nova and Cinder use for `status` (wsgi.py `_fault_names`).
    static func name(for status: Int) -> String {
        switch status {
        case 400: return "badRequest"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "itemNotFound"
        case 405: return "badMethod"
        case 409: return "conflictingRequest"
        case 413, 429: return "overLimit"
        case 415: return "badMediaType"
        case 501: return "notImplemented"
        case 503: return "serviceUnavailable"
        default: return "computeFault"
        }
    }

    /// A fault response; `retryAfter` adds the `Retry-After` header and the body's `retryAfter`.
    static func response(_ status: Int, _ message: String, retryAfter: String? = nil) -> EmulatorResponse {
        var members: [(String, JSON)] = [("code", .int(status)), ("message", .string(message))]
        var headers: [(String, String)] = []
        if let retryAfter {
            members.append(("retryAfter", .string(retryAfter)))
            headers.append(("Retry-After", retryAfter))
        }
        return EmulatorResponse(status: status, headers: headers, json: .object([(name(for: status), .object(members))]))
    }
}

/// A failed request inside a handler: thrown, then turned into the service's error body.
struct ServiceRejection: Error {
    var response: EmulatorResponse

    init(_ status: Int, _ message: String) { response = ServiceFault.response(status, message) }
    init(response: EmulatorResponse) { self.response = response }
}

/// Matches a request's method and path segments against patterns like `volumes/*/metadata`, where
/// `*` captures one segment.
struct RouteMatcher {
    let method: String
    let path: [String]

    /// The captured segments when `method` and `pattern` match, else nil.
    func callAsFunction(_ method: String, _ pattern: String) -> [String]? {
        guard method == self.method else { return nil }
        let parts = pattern.split(separator: "/").map(String.init)
        guard parts.count == path.count else { return nil }
        var captures: [String] = []
        for (part, segment) in zip(parts, path) {
            if part == "*" {
                captures.append(segment)
            } else if part != segment {
                return nil
            }
        }
        return captures
    }
}
