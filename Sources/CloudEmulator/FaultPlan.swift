import Foundation
import Yams

/// Faults to inject, deterministic for a given `seed` and request order: error answers per route,
/// latency, statuses that never settle, devices that appear late, tokens that stop working early.
///
/// As YAML (`--faults FILE`):
/// ```yaml
/// seed: 7
/// rules:
///   - {method: POST, path: /snapshots, rate: 0.5, status: 503, retry_after: 2}
///   - {path: /servers/detail, latency_ms: 300}
/// stuck: [snapshot:creating, volume:detaching]
/// device_delay_ms: 2000
/// token_valid_for_s: 30
/// crash_after_requests: 40
/// ```
public struct FaultPlan: Sendable, Codable {
    /// The seed of the generator that decides which requests fail.
    public var seed: UInt64
    /// Per-route error and latency rules; the first matching rule applies.
    public var rules: [FaultRule]
    /// Transitional statuses that never end, as `volume:<status>`, `snapshot:<status>` or `server:<status>`
    /// (the status the resource would leave, e.g. `volume:creating`, `volume:detaching`, `snapshot:creating`).
    public var stuck: [String]
    /// How long after `in-use` the proxy's device link appears, in milliseconds.
    public var deviceDelayMilliseconds: Int
    /// When set, tokens stop being accepted after this many seconds although `expires_at` says later.
    public var tokenValidForSeconds: Int?
    /// When set, the process dies (exit status 70, no answer, no cleanup) on this request since start,
    /// as a crashed API service does: state saved so far stays, loop devices stay attached, an external
    /// Keystone's catalog keeps the registration. A restart on the same state directory carries on.
    public var crashAfterRequests: Int?

    /// A plan; no faults by default.
    public init(
        seed: UInt64 = 1, rules: [FaultRule] = [], stuck: [String] = [], deviceDelayMilliseconds: Int = 0,
        tokenValidForSeconds: Int? = nil, crashAfterRequests: Int? = nil
    ) {
        self.seed = seed
        self.rules = rules
        self.stuck = stuck
        self.deviceDelayMilliseconds = deviceDelayMilliseconds
        self.tokenValidForSeconds = tokenValidForSeconds
        self.crashAfterRequests = crashAfterRequests
    }

    enum CodingKeys: String, CodingKey {
        case seed, rules, stuck
        case deviceDelayMilliseconds = "device_delay_ms"
        case tokenValidForSeconds = "token_valid_for_s"
        case crashAfterRequests = "crash_after_requests"
    }

    /// Decodes a plan; missing keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1,
            rules: try c.decodeIfPresent([FaultRule].self, forKey: .rules) ?? [],
            stuck: try c.decodeIfPresent([String].self, forKey: .stuck) ?? [],
            deviceDelayMilliseconds: try c.decodeIfPresent(Int.self, forKey: .deviceDelayMilliseconds) ?? 0,
            tokenValidForSeconds: try c.decodeIfPresent(Int.self, forKey: .tokenValidForSeconds),
            crashAfterRequests: try c.decodeIfPresent(Int.self, forKey: .crashAfterRequests))
    }

    /// Reads a plan from a YAML (or JSON) file.
    public static func load(path: String) throws -> FaultPlan {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw EmulatorError.unreadableFile(path: path, what: "fault plan", underlying: error)
        }
        do {
            return try YAMLDecoder().decode(FaultPlan.self, from: text)
        } catch {
            throw EmulatorError.invalidFile(path: path, what: "fault plan", reason: "\(error)")
        }
    }

    /// Whether `kind` (`volume`, `snapshot`, `server`) stays in `status` forever.
    func isStuck(_ kind: String, _ status: String) -> Bool { stuck.contains("\(kind):\(status)") }
}

/// One fault rule: requests whose method and path match fail at `rate` with `status`, after `latency`.
public struct FaultRule: Sendable, Codable {
    /// The HTTP method, or nil for any.
    public var method: String?
    /// A substring the request path must contain (e.g. `/snapshots`, `/os-volume_attachments`).
    public var path: String
    /// The share of matching requests that fail, 0...1.
    public var rate: Double
    /// The status of a failure: 500, 502, 503, 504 (plain-text body as from a load balancer) or 429.
    public var status: Int
    /// `Retry-After` seconds on 503 and 429.
    public var retryAfter: Int?
    /// Added latency for every matching request, in milliseconds.
    public var latencyMilliseconds: Int

    /// A rule.
    public init(
        method: String? = nil, path: String, rate: Double = 0, status: Int = 500, retryAfter: Int? = nil,
        latencyMilliseconds: Int = 0
    ) {
        self.method = method
        self.path = path
        self.rate = rate
        self.status = status
        self.retryAfter = retryAfter
        self.latencyMilliseconds = latencyMilliseconds
    }

    enum CodingKeys: String, CodingKey {
        case method, path, rate, status
        case retryAfter = "retry_after"
        case latencyMilliseconds = "latency_ms"
    }

    /// Decodes a rule; missing keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            method: try c.decodeIfPresent(String.self, forKey: .method),
            path: try c.decodeIfPresent(String.self, forKey: .path) ?? "",
            rate: try c.decodeIfPresent(Double.self, forKey: .rate) ?? 0,
            status: try c.decodeIfPresent(Int.self, forKey: .status) ?? 500,
            retryAfter: try c.decodeIfPresent(Int.self, forKey: .retryAfter),
            latencyMilliseconds: try c.decodeIfPresent(Int.self, forKey: .latencyMilliseconds) ?? 0)
    }

    /// Parses the command-line form `method=POST,path=/snapshots,rate=0.5,status=503,retry_after=2,latency_ms=100`
    /// (keys as in the YAML form; `path` is required).
    public init(flag: String) throws {
        var fields: [String: String] = [:]
        for pair in flag.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, ["method", "path", "rate", "status", "retry_after", "latency_ms"].contains(parts[0]) else {
                throw EmulatorError.invalidFile(
                    path: "--fault-rule", what: "fault rule",
                    reason: "'\(pair)' is not one of method=, path=, rate=, status=, retry_after=, latency_ms=")
            }
            fields[parts[0]] = parts[1]
        }
        func number<Value: LosslessStringConvertible>(_ key: String, _ type: Value.Type) throws -> Value? {
            guard let text = fields[key] else { return nil }
            guard let value = Value(text) else {
                throw EmulatorError.invalidFile(path: "--fault-rule", what: "fault rule", reason: "\(key)=\(text) is not a number")
            }
            return value
        }
        guard let path = fields["path"], !path.isEmpty else {
            throw EmulatorError.invalidFile(path: "--fault-rule", what: "fault rule", reason: "path= is required in '\(flag)'")
        }
        self.init(
            method: fields["method"], path: path, rate: try number("rate", Double.self) ?? 0,
            status: try number("status", Int.self) ?? 500, retryAfter: try number("retry_after", Int.self),
            latencyMilliseconds: try number("latency_ms", Int.self) ?? 0)
    }

    func matches(_ request: EmulatorRequest) -> Bool {
        (method == nil || method?.uppercased() == request.method) && request.path.contains(path)
    }

    /// The failure answer of this rule.
    func failure() -> EmulatorResponse {
        var headers: [(String, String)] = []
        if let retryAfter, status == 503 || status == 429 { headers.append(("Retry-After", String(retryAfter))) }
        if status == 429 {
            var response = ServiceFault.response(429, "This request was rate-limited.", retryAfter: retryAfter.map(String.init))
            if retryAfter == nil { response.headers += headers }
            return response
        }
        if status == 500 {
            return ServiceFault.response(
                500, "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.")
        }
        return EmulatorResponse(
            status: status, headers: headers,
            text: "<html><body><h1>\(status) Service Unavailable</h1>No server is available to handle this request.</body></html>",
            contentType: "text/html")
    }
}

/// SplitMix64: a tiny deterministic generator for fault decisions.
struct FaultGenerator: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A number in 0..<1.
    mutating func nextUnit() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}
