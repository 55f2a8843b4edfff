import Foundation
import Logging
import OpenStackClient

/// What the external Keystone said about the token of one Nova or Cinder call.
enum ExternalAuthentication: Sendable {
    /// The token is valid and scoped to a project.
    case accepted(Caller)
    /// No token, or Keystone does not accept it (expired, revoked, unknown, unscoped).
    case refused
    /// Keystone could not be asked; the call gets a 503 as keystonemiddleware answers.
    case unavailable
}

/// Validates the tokens of Nova and Cinder calls against the external Keystone as keystonemiddleware
/// does (`GET /v3/auth/tokens` with the service token), and remembers each accepted token for
/// ``ExternalKeystone/tokenCacheLifetime`` (never past its expiry).
actor ExternalTokenValidator {
    private struct Entry {
        var caller: Caller
        var validUntil: Date
    }

    private let session: KeystoneSession
    private let cacheLifetime: TimeInterval
    private let logger: Logger
    private var cache: [String: Entry] = [:]

    init(session: KeystoneSession, cacheLifetime: TimeInterval, logger: Logger) {
        self.session = session
        self.cacheLifetime = cacheLifetime
        self.logger = logger
    }

    /// The caller of a request carrying `token`.
    func authenticate(_ token: String?, now: Date = Date()) async -> ExternalAuthentication {
        guard let token, !token.isEmpty else { return .refused }
        if let entry = cache[token] {
            if entry.validUntil > now { return .accepted(entry.caller) }
            cache[token] = nil
        }
        let answer: KeystoneToken?
        do {
            answer = try await session.validate(Secret(token))
        } catch {
            logger.error(
                "cannot validate a token with the external Keystone",
                metadata: ["osb-keystone": "\(session.configuration.identityURL)", "osb-error": "\(error)"])
            return .unavailable
        }
        guard let answer, let projectID = answer.projectID, answer.expiresAt > now else { return .refused }
        let caller = Caller(projectID: projectID, userID: answer.userID, isAdmin: answer.roles.contains("admin"))
        if cacheLifetime > 0 {
            if cache.count > 10_000 { cache = cache.filter { $0.value.validUntil > now } }
            cache[token] = Entry(caller: caller, validUntil: min(answer.expiresAt, now.addingTimeInterval(cacheLifetime)))
        }
        return .accepted(caller)
    }
}
