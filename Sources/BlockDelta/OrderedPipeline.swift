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
/// An optional ``OrderedPlacement`` stage lets the workers write the chunks' outputs into one file
/// themselves, in parallel: after `work`, each chunk's output size is added up in chunk order (under the
/// lock, a few additions) to give it its offset, and then any worker writes it there; a chunk is handed to
/// `consume` only once it is written (at once when it has nothing to write). A worker takes placed chunks to write before it claims new ones, so
/// written bytes do not pile up; the lowest unplaced chunk is always claimed by a worker that will place
/// it (and every worked chunk after it), so placement cannot stall either.
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
        place: OrderedPlacement<Slot, Worker>? = nil,
        consume: (_ chunk: Int, _ slot: Slot) throws(BlockDeltaError) -> Void
    ) throws(BlockDeltaError) {
        precondition(workerCount >= 1 && slots.count >= workerCount)
        guard chunkCount > 0 else { return }
        let threads = min(workerCount, chunkCount)
        let state = PipelineState(slots: slots, chunkCount: chunkCount, workerCount: threads, placesOutput: place != nil)
        for _ in 0..<threads {
            let thread = Thread {
                osb_set_thread_name("osb-pipeline")
                defer { state.workerExited() }
                let worker = makeWorker()
                while let task = state.nextTask() {
                    do throws(BlockDeltaError) {
                        switch task {
                        case .work(let chunk, let slot):
                            if let load {
                                guard state.awaitTurn(chunk) else { return }
                                defer { state.passTurn() }
                                try load(chunk, slot)
                            }
                            try work(chunk, slot, worker)
                            if let place {
                                state.worked(chunk, slot, outputSize: place.size(slot))
                            } else {
                                state.complete(chunk, slot)
                            }
                        case .write(let chunk, let slot, let offset):
                            try place!.write(chunk, slot, offset, worker)
                            state.complete(chunk, slot)
                        }
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
    /// What a worker does next.
    enum Task {
        /// Run `load` and `work` on a newly claimed chunk.
        case work(Int, Slot)
        /// Write a placed chunk's output at its offset.
        case write(Int, Slot, UInt64)
    }

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
    /// Whether worked chunks are placed and written before they complete.
    private let placesOutput: Bool
    /// Worked chunks waiting for the chunks before them to be placed, with their output sizes.
    private var awaitingPlacement: [Int: (slot: Slot, size: UInt64)] = [:]
    /// The next chunk to place, and the offset it gets: the output sizes of every chunk before it.
    private var nextPlace = 0
    private var placedBytes: UInt64 = 0
    /// Placed chunks waiting for a worker to write them, lowest first.
    private var writable: [(chunk: Int, slot: Slot, offset: UInt64)] = []

    init(slots: [Slot], chunkCount: Int, workerCount: Int, placesOutput: Bool) {
        freeSlots = slots
        self.chunkCount = chunkCount
        self.workerCount = workerCount
        self.placesOutput = placesOutput
    }

    /// A placed chunk to write, else the next chunk with a free slot for it; nil when no more work can come
    /// to this worker or the run stopped.
    func nextTask() -> Task? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if isStopped { return nil }
            if !writable.isEmpty {
                let next = writable.removeFirst()
                return .write(next.chunk, next.slot, next.offset)
            }
            if nextChunk < chunkCount {
                if !freeSlots.isEmpty {
                    let chunk = nextChunk
                    nextChunk += 1
                    return .work(chunk, freeSlots.removeLast())
                }
            } else if !placesOutput || nextPlace == chunkCount {
                // Every chunk is claimed and (when placing) placed: what is left is other workers' to finish.
                return nil
            }
            condition.wait()
        }
    }

    /// Records a worked chunk's output size and places every chunk that can now be placed, in order.
    func worked(_ chunk: Int, _ slot: Slot, outputSize: UInt64) {
        condition.lock()
        awaitingPlacement[chunk] = (slot, outputSize)
        while let next = awaitingPlacement.removeValue(forKey: nextPlace) {
            if next.size == 0 {
                // Nothing to write: the chunk is complete where it stands.
                completed[nextPlace] = next.slot
            } else {
                writable.append((nextPlace, next.slot, placedBytes))
            }
            placedBytes += next.size
            nextPlace += 1
        }
        condition.broadcast()
        condition.unlock()
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

/// The stage of an ``OrderedPipeline`` that has the workers write the chunks' outputs into one file at
/// offsets fixed in chunk order: chunk *k*'s output goes right after chunk *k − 1*'s, as an ordered writer
/// would have put it, but the bytes are written by whichever worker is free, several at once.
public struct OrderedPlacement<Slot: AnyObject & Sendable, Worker>: Sendable {
    /// The bytes a worked chunk writes (asked on the worker that worked it, right after `work`).
    public var size: @Sendable (_ slot: Slot) -> UInt64
    /// Writes the chunk's output at `offset`, the sum of the sizes of every chunk before it (not called for
    /// a chunk whose size is 0).
    public var write: @Sendable (_ chunk: Int, _ slot: Slot, _ offset: UInt64, _ worker: Worker) throws(BlockDeltaError) -> Void

    /// Creates the stage.
    public init(
        size: @escaping @Sendable (_ slot: Slot) -> UInt64,
        write: @escaping @Sendable (_ chunk: Int, _ slot: Slot, _ offset: UInt64, _ worker: Worker) throws(BlockDeltaError) -> Void
    ) {
        self.size = size
        self.write = write
    }
}
