public import Foundation

/// The `http_proxy` / `https_proxy` / `no_proxy` environment, which AsyncHTTPClient does not read itself.
public struct ProxySettings: Sendable, Hashable {
    /// A proxy server.
    public struct Server: Sendable, Hashable {
        /// The proxy's host.
        public var host: String
        /// The proxy's port.
        public var port: Int
    }

    /// The proxy for `http://` URLs.
    public var http: Server?
    /// The proxy for `https://` URLs.
    public var https: Server?
    /// Hosts and domain suffixes that are reached directly (`*` means every host).
    public var noProxy: [String]

    /// Creates settings.
    public init(http: Server? = nil, https: Server? = nil, noProxy: [String] = []) {
        self.http = http
        self.https = https
        self.noProxy = noProxy
    }

    /// Reads `http_proxy`, `https_proxy` and `no_proxy` (either case) from `environment`.
    public init(environment: [String: String]) {
        func variable(_ name: String) -> String? {
            let value = environment[name] ?? environment[name.uppercased()]
            return value?.isEmpty == false ? value : nil
        }
        http = variable("http_proxy").flatMap(Self.parse)
        https = variable("https_proxy").flatMap(Self.parse)
        noProxy = (variable("no_proxy") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }.filter { !$0.isEmpty }
    }

    private static func parse(_ text: String) -> Server? {
        let withScheme = text.contains("://") ? text : "http://\(text)"
        guard let components = URLComponents(string: withScheme), let host = components.host else { return nil }
        return Server(host: host, port: components.port ?? 3128)
    }

    /// The proxy to use for `url`, nil to connect directly.
    public func server(for url: URL) -> Server? {
        guard let host = url.host?.lowercased() else { return nil }
        let server = url.scheme == "https" ? https : http
        guard server != nil else { return nil }
        for entry in noProxy {
            if entry == "*" { return nil }
            let suffix = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            if host == suffix || host.hasSuffix("." + suffix) { return nil }
        }
        return server
    }
}
