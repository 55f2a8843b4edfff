/// Creating a resource exactly once over an unreliable network.
///
/// A `POST` that failed without an answer (a connection reset, a gateway 502/503/504) may still have
/// created the resource. So before trying again, the resource is looked up by a tag the request carried
/// (a metadata key with a value unique to this request); only when it is not there is the create repeated.
enum IdempotentCreate {
    /// The metadata key that carries the request tag.
    static let tagKey = "osbackup_request"

    /// Runs `create` up to `attempts` times, calling `lookup` after every ambiguous failure.
    static func run<Resource: Sendable>(
        attempts: Int = 3, policy: RetryPolicy = .init(),
        create: () async throws(OpenStackError) -> Resource,
        lookup: () async throws(OpenStackError) -> Resource?
    ) async throws(OpenStackError) -> Resource {
        var attempt = 1
        while true {
            do {
                return try await create()
            } catch {
                let ambiguous = error.isTransportError || [500, 502, 503, 504].contains(error.status ?? 0)
                guard ambiguous, attempt < attempts, !error.isCancellation else { throw error }
                try await cancellableSleep(for: policy.delay(afterAttempt: attempt), service: error.service, operation: error.operation)
                if let existing = try await lookup() { return existing }
                attempt += 1
            }
        }
    }
}
