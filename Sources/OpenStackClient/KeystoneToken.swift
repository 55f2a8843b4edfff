public import Foundation

/// A Keystone token and what Keystone said about it.
public struct KeystoneToken: Sendable {
    /// The token itself (from the `X-Subject-Token` header).
    public var value: Secret
    /// When it stops working.
    public var expiresAt: Date
    /// When it was issued.
    public var issuedAt: Date?
    /// The authentication methods (`password`, `application_credential`, `token`).
    public var methods: [String]
    /// The user's id.
    public var userID: String
    /// The user's name.
    public var userName: String?
    /// The scoped project's id (nil for an unscoped token).
    public var projectID: String?
    /// The scoped project's name.
    public var projectName: String?
    /// Role names on the project.
    public var roles: [String]
    /// The service catalog.
    public var catalog: ServiceCatalog

    /// Whether the token expires within `margin` of `now`.
    public func expires(within margin: TimeInterval, now: Date = Date()) -> Bool {
        expiresAt.timeIntervalSince(now) <= margin
    }
}

/// The body of `POST /v3/auth/tokens` and `GET /v3/auth/tokens`.
struct TokenResponseBody: Decodable {
    struct Named: Decodable {
        var id: String
        var name: String?
    }

    struct Token: Decodable {
        var methods: [String]
        var user: Named
        var expiresAt: String
        var issuedAt: String?
        var project: Named?
        var roles: [Named]?
        var catalog: ServiceCatalog?

        enum CodingKeys: String, CodingKey {
            case methods, user, project, roles, catalog
            case expiresAt = "expires_at"
            case issuedAt = "issued_at"
        }
    }

    var token: Token
}

/// Keystone's timestamps: `2026-11-22T02:34:49.000000Z` (ISO 8601 with microseconds, UTC).
enum KeystoneTimestamp {
    static func parse(_ text: String) -> Date? {
        var main = text
        var fraction = 0.0
        if main.hasSuffix("Z") { main.removeLast() }
        if let dot = main.firstIndex(of: ".") {
            fraction = Double("0" + main[dot...]) ?? 0
            main = String(main[..<dot])
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.date(from: main).map { $0.addingTimeInterval(fraction) }
    }
}
