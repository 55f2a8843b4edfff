import CLinuxIO
import Foundation

/// A serial executor on a thread of its own: the emulator's state actor runs on it, so its blocking work
/// (sparse copies of volumes and snapshots, `losetup`, state-file writes) never occupies a thread of
/// Swift's cooperative pool, which the HTTP server and, in-process, the client under test need.
///
/// Jobs run one at a time in the order they were enqueued. ``shutdown()`` ends the thread once the queue
/// is empty; the actor that owns the executor calls it from its `deinit`.
final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // `jobs` and `isShutDown` are guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var isShutDown = false

    /// Starts the thread, named `name` (at most 15 bytes show in `top -H`).
    init(name: String) {
        let thread = Thread { [self] in
            osb_set_thread_name(name)
            run()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Lets the thread end after the jobs already enqueued.
    func shutdown() {
        condition.lock()
        isShutDown = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !isShutDown { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedSerialExecutor())
        }
    }
}
