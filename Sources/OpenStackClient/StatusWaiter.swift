/// How long and how often to poll a resource for a status: back-off from `initialInterval`, growing by
/// `growth` per poll up to `maximumInterval`, for at most `timeout`.
///
/// The defaults (0.5 s, × 1.5, at most 4 s) see a step that ended at t by 1.5 t + 0.5 s, and never more
/// than 4 s late, in four to seven polls for the 2–10 s that a snapshot, a volume or an attachment takes
/// on a real cloud.
/// Doubling to 10 s, the earlier default, saw a 4 s attachment at 7.5 s and an 8 s one at 15.5 s: that
/// lost time is paid per step and per volume, on every job.
public struct StatusWaitPolicy: Sendable {
    /// The longest wait in all.
    public var timeout: Duration
    /// The first interval between polls.
    public var initialInterval: Duration
    /// The longest interval between polls.
    public var maximumInterval: Duration
    /// The factor from one interval to the next (at least 1).
    public var growth: Double

    /// Creates a policy; defaults: 10 minutes, 0.5 s growing by half to 4 s. Intervals are at least 1 ms
    /// and `growth` is kept within 1…16.
    public init(
        timeout: Duration = .seconds(600), initialInterval: Duration = .milliseconds(500),
        maximumInterval: Duration = .seconds(4), growth: Double = 1.5
    ) {
        self.timeout = timeout
        self.initialInterval = max(initialInterval, .milliseconds(1))
        self.maximumInterval = max(maximumInterval, self.initialInterval)
        self.growth = growth.isFinite ? min(max(1, growth), 16) : 1
    }

    /// The interval that follows `interval`.
    public func interval(after interval: Duration) -> Duration {
        interval >= maximumInterval ? maximumInterval : min(interval * growth, maximumInterval)
    }

    /// The times, from the first poll, at which the polls within `span` happen (the first one at zero).
    public func pollTimes(within span: Duration) -> [Duration] {
        var times: [Duration] = [.zero]
        var interval = initialInterval
        while let last = times.last, last + interval <= span {
            times.append(last + interval)
            interval = self.interval(after: interval)
        }
        return times
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
            interval = policy.interval(after: interval)
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
