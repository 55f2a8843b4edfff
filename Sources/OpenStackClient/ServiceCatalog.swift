/// The service catalog of a Keystone token, and the choice of an endpoint in it, as keystoneauth makes it:
/// by service type with its aliases, then interface preference, then region.
public struct ServiceCatalog: Sendable, Codable, Hashable {
    /// One service of the catalog.
    public struct Service: Sendable, Codable, Hashable {
        /// The service type (`compute`, `volumev3`, `block-storage`, ...).
        public var type: String
        /// The service name (`nova`, `cinderv3`, ...).
        public var name: String?
        /// The service id.
        public var id: String?
        /// Its endpoints.
        public var endpoints: [Endpoint]
    }

    /// One endpoint of a service.
    public struct Endpoint: Sendable, Codable, Hashable {
        /// The endpoint id.
        public var id: String?
        /// `public`, `internal` or `admin`.
        public var interface: String
        /// The region id (`region_id`; older catalogs only have `region`).
        public var regionID: String?
        /// The legacy region field.
        public var region: String?
        /// The URL, with the project id already substituted by Keystone.
        public var url: String

        enum CodingKeys: String, CodingKey {
            case id, interface, url, region
            case regionID = "region_id"
        }

        /// The region, whichever field carries it.
        public var effectiveRegion: String? { regionID ?? region }
    }

    /// The services.
    public var services: [Service]

    /// Creates a catalog.
    public init(services: [Service]) {
        self.services = services
    }

    public init(from decoder: any Decoder) throws {
        services = try [Service](from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try services.encode(to: encoder)
    }

    /// Official service types and their aliases, in the order they are tried (service-types-authority).
    public static let aliases: [String: [String]] = [
        "compute": [],
        "block-storage": ["volumev3", "volumev2", "volume", "block-store"],
        "identity": [],
        "image": [],
        "network": [],
    ]

    /// The official type for a type or one of its aliases (`volumev3` → `block-storage`).
    public static func officialType(for type: String) -> String {
        if aliases[type] != nil { return type }
        return aliases.first { $0.value.contains(type) }?.key ?? type
    }

    /// The URL for `serviceType` (official or alias), or nil with nothing that fits.
    ///
    /// The official type wins over its aliases, aliases are tried in order; within a type the first
    /// interface of `interfaces` that has an endpoint wins; `region`, when given, must match exactly. For
    /// block storage a `/v2/` endpoint is never chosen: osbackup speaks Cinder v3.
    public func endpointURL(serviceType: String, interfaces: [EndpointInterface], region: String?) -> String? {
        let official = Self.officialType(for: serviceType)
        let candidates = [official] + (Self.aliases[official] ?? [])
        for type in candidates {
            let endpoints = services.filter { $0.type == type }.flatMap(\.endpoints).filter { endpoint in
                !endpoint.url.isEmpty && (region == nil || endpoint.effectiveRegion == region)
                    && !(official == "block-storage" && endpoint.url.contains("/v2/"))
            }
            for interface in interfaces {
                if let match = endpoints.first(where: { EndpointInterface(name: $0.interface) == interface }) {
                    return match.url
                }
            }
        }
        return nil
    }

    /// The regions that have an endpoint for `serviceType`, for error messages.
    public func regions(serviceType: String) -> [String] {
        let official = Self.officialType(for: serviceType)
        let types = Set([official] + (Self.aliases[official] ?? []))
        let regions = services.filter { types.contains($0.type) }.flatMap(\.endpoints).compactMap(\.effectiveRegion)
        return Array(Set(regions)).sorted()
    }
}
