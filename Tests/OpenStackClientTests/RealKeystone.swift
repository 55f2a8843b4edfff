import Foundation
import Logging
import Synchronization
import Testing
@testable import OpenStackClient

/// The real Keystone that `scripts/keystone-up` started for this test run (`make test` does it and
/// points `OSBACKUP_KEYSTONE_ENV` at its `keystone.env`).
struct RealKeystone: Sendable {
    let values: [String: String]

    static let current: RealKeystone? = {
        guard let path = ProcessInfo.processInfo.environment["OSBACKUP_KEYSTONE_ENV"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return nil }
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return RealKeystone(values: values)
    }()

    static var isRunning: Bool { current != nil }

    subscript(_ key: String) -> String {
        guard let value = values[key] else { fatalError("keystone.env has no \(key)") }
        return value
    }

    var tokenLifetime: TimeInterval { TimeInterval(values["KEYSTONE_TOKEN_EXPIRATION"] ?? "3600") ?? 3600 }

    func passwordConfiguration(password: String? = nil) -> CloudConfiguration {
        CloudConfiguration(
            authURL: self["KEYSTONE_URL"],
            credentials: .password(
                user: UserReference(name: self["KEYSTONE_USER"], domainName: self["KEYSTONE_DOMAIN"]),
                password: Secret(password ?? self["KEYSTONE_PASSWORD"]),
                project: ProjectReference(name: self["KEYSTONE_PROJECT"], domainName: self["KEYSTONE_DOMAIN"])))
    }

    func applicationCredentialConfiguration(secret: String? = nil) -> CloudConfiguration {
        CloudConfiguration(
            authURL: self["KEYSTONE_URL"],
            credentials: .applicationCredential(
                .id(self["KEYSTONE_APP_CRED_ID"]), secret: Secret(secret ?? self["KEYSTONE_APP_CRED_SECRET"])))
    }
}

/// A log handler that keeps every line, to prove what never reaches a log.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // `lines` is guarded by the mutex; the rest is LogHandler's value-like configuration.
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }
    var count: Int { lines.withLock { $0.count } }
}
