import Synchronization

/// A signal that fires once: ``wait()`` returns as soon as ``signal()`` has been called, before or after
/// the wait began; later signals do nothing.
///
/// A cloud volume's workflow uses it to start undoing its temporary resources as soon as the device has
/// been read, from whichever thread the scan ends on.
final class OneShotSignal: Sendable {
    private struct State: ~Copyable {
        var fired = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Fires the signal (the first call only) and wakes every waiter.
    func signal() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the signal has fired. Not cancellable: the signal must come.
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let fired = state.withLock { state -> Bool in
                if state.fired { return true }
                state.waiters.append(continuation)
                return false
            }
            if fired { continuation.resume() }
        }
    }
}
