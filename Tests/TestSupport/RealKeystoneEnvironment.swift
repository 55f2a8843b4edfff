public import Foundation

/// The real Keystone that `scripts/keystone-up` started for this test run: `make test` does it and points
/// `OSBACKUP_KEYSTONE_ENV` at its `keystone.env` (`KEY=value` lines: `KEYSTONE_URL`, `KEYSTONE_ADMIN_USER`...).
public struct RealKeystoneEnvironment: Sendable {
    /// Every `KEY=value` of `keystone.env`.
    public let values: [String: String]

    /// The Keystone of this run, or nil when the tests run without one (plain `swift test`).
    public static let current: RealKeystoneEnvironment? = {
        guard let path = ProcessInfo.processInfo.environment["OSBACKUP_KEYSTONE_ENV"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return RealKeystoneEnvironment(values: values)
    }()

    /// Whether this run has a real Keystone.
    public static var isRunning: Bool { current != nil }

    /// The value of `key`; a missing key is a broken `keystone.env` and stops the tests.
    public subscript(_ key: String) -> String {
        guard let value = values[key] else { fatalError("keystone.env has no \(key)") }
        return value
    }

    /// The token lifetime Keystone was configured with.
    public var tokenLifetime: TimeInterval { TimeInterval(values["KEYSTONE_TOKEN_EXPIRATION"] ?? "3600") ?? 3600 }
}
