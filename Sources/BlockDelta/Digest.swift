import COpenSSL

/// A SHA-256 digest of one block, 32 bytes.
///
/// The all-zero value is reserved: hash maps use it to mark a block whose bytes are all zero (no data
/// hashes to 32 zero bytes in practice), so ``zeroBlockMarker`` never collides with a real digest.
public struct BlockDigest: Hashable, Sendable, CustomStringConvertible {
    /// The digest size in bytes.
    public static let byteCount = 32

    /// The marker stored in a hash map for a block that reads as all zeros.
    public static let zeroBlockMarker = BlockDigest(words: (0, 0, 0, 0))

    /// The digest as four little-endian 64-bit words (cheap to compare and hash).
    public var words: (UInt64, UInt64, UInt64, UInt64)

    /// Creates a digest from its four words.
    public init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// Reads a digest from the first 32 bytes of `bytes`.
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.byteCount)
        words = (
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        )
    }

    /// Writes the 32 digest bytes at the start of `destination`.
    public func store(into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= Self.byteCount)
        destination.storeBytes(of: words.0.littleEndian, toByteOffset: 0, as: UInt64.self)
        destination.storeBytes(of: words.1.littleEndian, toByteOffset: 8, as: UInt64.self)
        destination.storeBytes(of: words.2.littleEndian, toByteOffset: 16, as: UInt64.self)
        destination.storeBytes(of: words.3.littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// Calls `body` with the 32 digest bytes in order.
    public func withEncodedBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var encoded = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &encoded) { store(into: $0) }
        return try withUnsafeBytes(of: encoded) { bytes throws(Failure) in try body(bytes) }
    }

    /// The digest bytes in order.
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.byteCount) { buffer, count in
            store(into: UnsafeMutableRawBufferPointer(buffer))
            count = Self.byteCount
        }
    }

    /// Whether this is the zero-block marker.
    public var isZeroBlockMarker: Bool { self == Self.zeroBlockMarker }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// Lower-case hex, as `sha256sum` prints it.
    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// An incremental SHA-256 computation backed by OpenSSL's EVP interface.
///
/// One hasher belongs to one thread at a time (it owns an `EVP_MD_CTX`); create one per worker and reuse
/// it for every block, which avoids OpenSSL's per-call context and algorithm fetch.
public final class SHA256Hasher {
    private let context: OpaquePointer
    private let algorithm: OpaquePointer

    /// Creates a hasher ready for ``update(_:)``.
    public init() {
        guard let context = EVP_MD_CTX_new(), let algorithm = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("OpenSSL libcrypto has no SHA-256: the system library is broken")
        }
        self.context = context
        self.algorithm = algorithm
        reset()
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_MD_free(algorithm)
    }

    /// Starts a new digest, forgetting anything fed so far.
    public func reset() {
        guard EVP_DigestInit_ex2(context, algorithm, nil) == 1 else {
            fatalError("EVP_DigestInit_ex2 failed for SHA-256")
        }
    }

    /// Feeds bytes into the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1 else {
            fatalError("EVP_DigestUpdate failed for SHA-256")
        }
    }

    /// Feeds bytes into the digest.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Finishes the digest and resets the hasher for the next one.
    public func finalize() -> BlockDigest {
        var output = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &output) { raw in
            var length: UInt32 = 0
            guard EVP_DigestFinal_ex(context, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), &length) == 1,
                length == 32
            else {
                fatalError("EVP_DigestFinal_ex failed for SHA-256")
            }
        }
        reset()
        return withUnsafeBytes(of: &output) { BlockDigest(bytes: $0) }
    }

    /// The digest of `bytes` alone.
    public func digest(of bytes: UnsafeRawBufferPointer) -> BlockDigest {
        reset()
        update(bytes)
        return finalize()
    }
}
