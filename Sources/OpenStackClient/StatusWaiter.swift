/// How long and how often to poll a resource for a status: back-off from `initialInterval`, doubling up to
/// `maximumInterval`, for at most `timeout`.
public struct StatusWaitPolicy: Sendable {
    /// The longest wait in all.
    public var timeout: Duration
    /// The first interval between polls.
    public var initialInterval: Duration
    /// The longest interval between polls.
    public var maximumInterval: Duration

    /// Creates a policy; defaults: 10 minutes, 0.5 s doubling to 10 s.
    public init(timeout: Duration = .seconds(600), initialInterval: Duration = .milliseconds(500), maximumInterval: Duration = .seconds(10)) {
        self.timeout = timeout
        self.initialInterval = initialInterval
        self.maximumInterval = maximumInterval
    }
}

/// Polls until a resource reaches a wanted status, fails fast on an error status, and on timeout reports
/// the last status seen.
enum StatusWaiter {
    /// Polls `read` until the status is in `wanted`.
    ///
    /// - Parameters:
    ///   - what: the resource for messages, e.g. `volume 9d8a…`.
    ///   - read: returns the resource and its status, or nil once it is gone.
    ///   - failing: statuses after which waiting is pointless (`error`, `error_deleting`).
    ///   - wantsGone: wait for the resource to disappear (404) instead.
    static func wait<Resource: Sendable>(
        for what: String, service: String, wanted: Set<String>, failing: Set<String>, wantsGone: Bool = false,
        policy: StatusWaitPolicy, read: () async throws(OpenStackError) -> (Resource, String)?
    ) async throws(OpenStackError) -> Resource? {
        let clock = ContinuousClock()
        let deadline = clock.now + policy.timeout
        var interval = policy.initialInterval
        var lastStatus = "unknown"
        while true {
            if let (resource, status) = try await read() {
                lastStatus = status
                if !wantsGone && wanted.contains(status) { return resource }
                if failing.contains(status) {
                    throw .invalidResponse(
                        service: service, operation: "wait for \(what)", status: nil, requestID: nil,
                        "\(what) went to status '\(status)' while waiting for \(describe(wanted, wantsGone))")
                }
            } else {
                if wantsGone { return nil }
                throw .invalidResponse(
                    service: service, operation: "wait for \(what)", status: 404, requestID: nil,
                    "\(what) disappeared while waiting for \(describe(wanted, wantsGone))")
            }
            guard !Task.isCancelled else { throw .cancelled(service: service, operation: "wait for \(what)") }
            guard clock.now + interval < deadline else {
                throw .timeout(
                    service: service, operation: "wait for \(what)",
                    "\(what) stayed in status '\(lastStatus)' for \(policy.timeout) (wanted \(describe(wanted, wantsGone))); a service may be down, an admin can reset its status")
            }
            try await cancellableSleep(for: interval, service: service, operation: "wait for \(what)")
            interval = min(interval * 2, policy.maximumInterval)
        }
    }

    private static func describe(_ wanted: Set<String>, _ wantsGone: Bool) -> String {
        wantsGone ? "it to be deleted" : wanted.sorted().joined(separator: " or ")
    }
}

/// Sleeps, turning a cancellation into ``OpenStackError/cancelled(service:operation:)`` so it reaches the
/// caller as a cancel, never as a timeout or a transport error.
func cancellableSleep(for duration: Duration, service: String, operation: String) async throws(OpenStackError) {
    do {
        try await Task.sleep(for: duration)
    } catch {
        throw .cancelled(service: service, operation: operation)
    }
}
