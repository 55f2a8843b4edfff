import CZstd

/// A zstd compression context for one worker thread, reused for every block it compresses.
///
/// Not `Sendable`: a context belongs to the thread that made it (see ``OrderedPipeline``'s workers).
final class BlockCompressor {
    private let context: OpaquePointer
    /// The zstd level.
    let level: Int

    /// Creates a context at `level`; frames carry their content size and no zstd checksum (each block is
    /// checked against its SHA-256 digest instead).
    init(level: Int) {
        guard let context = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx: out of memory") }
        self.context = context
        self.level = level
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level))
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)
        ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `block` into `destination`; returns the frame's size, or nil when the frame would not be
    /// smaller than the block (the block is then stored raw).
    func compress(_ block: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        let capacity = min(destination.count, block.count - 1)
        guard capacity > 0 else { return nil }
        let result = ZSTD_compress2(context, destination.baseAddress, capacity, block.baseAddress, block.count)
        // An error here is "destination too small" (the block does not shrink): the block is stored raw.
        guard ZSTD_isError(result) == 0 else { return nil }
        return result
    }
}

/// A zstd decompression context for one worker thread, reused for every frame it decompresses.
final class BlockDecompressor {
    private let context: OpaquePointer

    /// Creates a context.
    init() {
        guard let context = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx: out of memory") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `frame` into `destination`, which must come out exactly full; on failure, returns why
    /// in words for an error message.
    func decompress(_ frame: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> String? {
        let result = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count, frame.baseAddress, frame.count)
        if ZSTD_isError(result) != 0 {
            if ZSTD_getErrorCode(result) == ZSTD_error_dstSize_tooSmall {
                return "decompresses to more than the block's \(destination.count) bytes"
            }
            return "does not decompress (zstd: \(String(cString: ZSTD_getErrorName(result))))"
        }
        guard result == destination.count else {
            return "decompresses to \(result) bytes, not the block's \(destination.count)"
        }
        return nil
    }
}
