import CLinuxIO
import Foundation

/// Runs work on chunks in parallel on dedicated threads and hands the results back in chunk order.
///
/// Workers claim chunk indices in increasing order, each with a free slot (a reusable buffer), run `work`
/// on it, and publish it; the calling thread runs `consume` on chunk 0, 1, 2, ... in order and returns
/// each slot to the pool. At most `slots.count` chunks are in flight, so memory stays bounded whatever
/// the volume size, and since the lowest unfinished chunk always holds a slot, the pipeline cannot stall.
///
/// Each worker thread makes its own context with `makeWorker` (a compression context, reused for every
/// chunk it works on) and passes it to `work`. An optional `load` stage runs on the workers before `work`,
/// one chunk at a time in chunk order (for input that can only be read front to back, such as framed
/// block data): a worker waits for its turn, loads, and hands the turn on. The lowest unloaded chunk is
/// always claimed and its worker never waits on a later one, so the turns cannot stall either.
///
/// Blocking I/O (`pread` on a device) runs on these threads rather than on Swift's cooperative pool,
/// which must never be blocked.
public enum OrderedPipeline {
    /// Runs the pipeline to completion; the first error from a worker or from `consume` stops it and is thrown
    /// after every worker has exited.
    public static func run<Slot: AnyObject & Sendable, Worker>(
        chunkCount: Int,
        workerCount: Int,
        slots: [Slot],
        makeWorker: @escaping @Sendable () -> Worker,
        load: (@Sendable (_ chunk: Int, _ slot: Slot) throws(BlockDeltaError) -> Void)? = nil,
        work: @escaping @Sendable (_ chunk: Int, _ slot: Slot, _ worker: Worker) throws(BlockDeltaError) -> Void,
        consume: (_ chunk: Int, _ slot: Slot) throws(BlockDeltaError) -> Void
    ) throws(BlockDeltaError) {
        precondition(workerCount >= 1 && slots.count >= workerCount)
        guard chunkCount > 0 else { return }
        let threads = min(workerCount, chunkCount)
        let state = PipelineState(slots: slots, chunkCount: chunkCount, workerCount: threads)
        for _ in 0..<threads {
            let thread = Thread {
                osb_set_thread_name("osb-pipeline")
                defer { state.workerExited() }
                let worker = makeWorker()
                while let (chunk, slot) = state.claim() {
                    do throws(BlockDeltaError) {
                        if let load {
                            guard state.awaitTurn(chunk) else { return }
                            defer { state.passTurn() }
                            try load(chunk, slot)
                        }
                        try work(chunk, slot, worker)
                        state.complete(chunk, slot)
                    } catch {
                        state.fail(error)
                        return
                    }
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        defer { state.stopAndWaitForWorkers() }
        for chunk in 0..<chunkCount {
            let slot = try state.awaitCompleted(chunk)
            do {
                try consume(chunk, slot)
            } catch {
                state.fail(error)
                throw error
            }
            state.release(slot)
        }
    }
}

/// The shared state of one pipeline run, guarded by one condition lock: every field is read and written
/// only between `lock()` and `unlock()`, which is what makes the `@unchecked Sendable` sound. A slot is
/// touched by one thread at a time: the lock hand-off orders a worker's writes before the consumer's reads.
private final class PipelineState<Slot: AnyObject & Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var freeSlots: [Slot]
    private var completed: [Int: Slot] = [:]
    private var nextChunk = 0
    private var loadTurn = 0
    private let chunkCount: Int
    private var failure: BlockDeltaError?
    private var isStopped = false
    private let workerCount: Int
    private var exitedWorkers = 0

    init(slots: [Slot], chunkCount: Int, workerCount: Int) {
        freeSlots = slots
        self.chunkCount = chunkCount
        self.workerCount = workerCount
    }

    /// The next chunk and a free slot for it, or nil when there is no more work or the run stopped.
    func claim() -> (Int, Slot)? {
        condition.lock()
        defer { condition.unlock() }
        while !isStopped && nextChunk < chunkCount && freeSlots.isEmpty { condition.wait() }
        guard !isStopped, nextChunk < chunkCount else { return nil }
        let chunk = nextChunk
        nextChunk += 1
        return (chunk, freeSlots.removeLast())
    }

    /// Waits until `chunk` is the next to load; false when the run stopped meanwhile.
    func awaitTurn(_ chunk: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !isStopped && loadTurn != chunk { condition.wait() }
        return !isStopped
    }

    /// Hands the load turn to the next chunk.
    func passTurn() {
        condition.lock()
        loadTurn += 1
        condition.broadcast()
        condition.unlock()
    }

    func complete(_ chunk: Int, _ slot: Slot) {
        condition.lock()
        completed[chunk] = slot
        condition.broadcast()
        condition.unlock()
    }

    func fail(_ error: BlockDeltaError) {
        condition.lock()
        if failure == nil { failure = error }
        isStopped = true
        condition.broadcast()
        condition.unlock()
    }

    func awaitCompleted(_ chunk: Int) throws(BlockDeltaError) -> Slot {
        condition.lock()
        defer { condition.unlock() }
        while completed[chunk] == nil && failure == nil { condition.wait() }
        if let failure { throw failure }
        return completed.removeValue(forKey: chunk)!
    }

    func release(_ slot: Slot) {
        condition.lock()
        freeSlots.append(slot)
        condition.broadcast()
        condition.unlock()
    }

    func workerExited() {
        condition.lock()
        exitedWorkers += 1
        condition.broadcast()
        condition.unlock()
    }

    func stopAndWaitForWorkers() {
        condition.lock()
        isStopped = true
        condition.broadcast()
        while exitedWorkers < workerCount { condition.wait() }
        condition.unlock()
    }
}
