import Foundation

/// A microversion `major.minor`, ordered.
public struct APIMicroversion: Sendable, Comparable, CustomStringConvertible, Codable {
    /// The major number (2 for Nova, 3 for Cinder).
    public var major: Int
    /// The minor number.
    public var minor: Int

    /// A microversion.
    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses `X.Y`; nil when malformed.
    public init?(parsing text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]), major >= 0, minor >= 0 else {
            return nil
        }
        self.init(major, minor)
    }

    /// `X.Y`.
    public var description: String { "\(major).\(minor)" }

    /// Orders by major, then minor.
    public static func < (lhs: APIMicroversion, rhs: APIMicroversion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }
}

/// The microversion range one service serves and how it reads the request headers.
struct MicroversionPolicy: Sendable {
    /// The name in `OpenStack-API-Version: <service> X.Y` (`compute`, `volume`).
    var service: String
    var minimum: APIMicroversion
    var maximum: APIMicroversion
    /// A legacy header also accepted (`X-OpenStack-Nova-API-Version`).
    var legacyHeader: String?

    static let compute = MicroversionPolicy(
        service: "compute", minimum: .init(2, 1), maximum: .init(2, 101), legacyHeader: "X-OpenStack-Nova-API-Version")
    static let volume = MicroversionPolicy(service: "volume", minimum: .init(3, 0), maximum: .init(3, 70), legacyHeader: nil)

    /// The microversion a request asks for (the minimum without a header), or the 400/406 rejection.
    func negotiate(_ request: EmulatorRequest) throws(ServiceRejection) -> APIMicroversion {
        var requested: String?
        if let header = request.header("OpenStack-API-Version") {
            for item in header.split(separator: ",") {
                let words = item.split(separator: " ", omittingEmptySubsequences: true)
                if words.count == 2, words[0].lowercased() == service { requested = String(words[1]) }
            }
        }
        if requested == nil, let legacyHeader, let legacy = request.header(legacyHeader) {
            requested = legacy.trimmingCharacters(in: .whitespaces)
        }
        guard let requested else { return minimum }
        if requested.lowercased() == "latest" { return maximum }
        guard let version = APIMicroversion(parsing: requested) else {
            throw ServiceRejection(
                400, "API Version String \(requested) is of invalid format. Must be of format MajorNum.MinorNum.")
        }
        guard version >= minimum, version <= maximum else {
            var response = ServiceFault.response(
                406, "Version \(version) is not supported by the API. Minimum is \(minimum) and maximum is \(maximum).")
            response.headers += headers(for: version)
            throw ServiceRejection(response: response)
        }
        return version
    }

    /// The headers that echo the chosen microversion.
    func headers(for version: APIMicroversion) -> [(String, String)] {
        var headers = [("OpenStack-API-Version", "\(service) \(version)")]
        if let legacyHeader {
            headers.append((legacyHeader, "\(version)"))
            headers.append(("Vary", "OpenStack-API-Version, \(legacyHeader)"))
        } else {
            headers.append(("Vary", "OpenStack-API-Version"))
        }
        return headers
    }
}
