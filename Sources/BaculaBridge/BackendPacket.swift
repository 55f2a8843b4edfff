import Foundation

/// One packet of the plugin–backend protocol (docs/bacula-protocol.md): a status character, then a payload
/// of at most 999 999 bytes. On the wire: the status, six ASCII decimal digits of length, `\n`, the payload.
public struct BackendPacket: Sendable, Hashable {
    /// What a packet is.
    public enum Status: UInt8, Sendable, Hashable, CaseIterable {
        /// A command or a reply (text).
        case command = 0x43  // C
        /// File data.
        case data = 0x44  // D
        /// End of data: ends a list, a file's data, or a header block.
        case endOfData = 0x46  // F
        /// A job message, info.
        case info = 0x49  // I
        /// A job message, warning.
        case warning = 0x57  // W
        /// A job message, error: the job fails, the session goes on.
        case error = 0x45  // E
        /// Abort: the sender stops and the job fails.
        case abort = 0x41  // A
        /// Keep-alive (backend → plugin).
        case keepAlive = 0x4B  // K

        /// Whether the payload is text.
        var isText: Bool { self != .data }
    }

    /// The largest payload the header can state.
    public static let maximumPayload = 999_999
    /// The header's size in bytes.
    public static let headerSize = 8

    /// The status.
    public var status: Status
    /// The payload.
    public var payload: [UInt8]

    /// A packet; text payloads must be UTF-8 without NUL (``BackendPacketReader`` enforces it on input).
    public init(_ status: Status, _ payload: [UInt8] = []) {
        self.status = status
        self.payload = payload
    }

    /// A text packet.
    public init(_ status: Status, text: String) {
        self.init(status, Array(text.utf8))
    }

    /// The payload as text (text packets).
    public var text: String { String(decoding: payload, as: UTF8.self) }

    /// The bytes on the wire. A payload over ``maximumPayload`` bytes is a programming error.
    public func encoded() -> [UInt8] {
        precondition(payload.count <= Self.maximumPayload, "a packet payload holds at most 999 999 bytes")
        var bytes = [status.rawValue]
        bytes += Array(String(format: "%06d", payload.count).utf8)
        bytes.append(0x0A)
        bytes += payload
        return bytes
    }
}

/// A protocol violation or a broken pipe, with what was found and where.
public struct BackendProtocolError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// The byte offset in the stream where it was found.
    public let offset: UInt64

    /// Creates an error.
    public init(_ message: String, offset: UInt64) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "plugin protocol error at byte \(offset): \(message)" }
}

/// Reads packets from a file descriptor (the plugin's end of a pipe), checking each header and never
/// holding more than one packet. Not thread-safe: one reader thread.
public final class BackendPacketReader: @unchecked Sendable {
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var offset: UInt64 = 0
    private var atEnd = false

    /// Reads from `descriptor` (not closed by the reader).
    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The next packet, or nil at a clean end of the stream (between packets).
    public func next() throws(BackendProtocolError) -> BackendPacket? {
        guard let header = try take(BackendPacket.headerSize, allowEnd: true) else { return nil }
        guard let status = BackendPacket.Status(rawValue: header[0]) else {
            throw BackendProtocolError("unknown packet status \(describe(header[0]))", offset: offset - 8)
        }
        let digits = header[1..<7]
        guard digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw BackendProtocolError("the packet length is not six decimal digits: '\(describe(digits))'", offset: offset - 7)
        }
        guard header[7] == 0x0A else {
            throw BackendProtocolError("the packet header does not end with a newline", offset: offset - 1)
        }
        let length = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard let payload = try take(length, allowEnd: false) else {
            throw BackendProtocolError("the stream ended inside a packet", offset: offset)
        }
        if status.isText {
            guard !payload.contains(0) else { throw BackendProtocolError("a text packet holds a NUL byte", offset: offset - UInt64(length)) }
            guard String(validating: payload, as: UTF8.self) != nil else {
                throw BackendProtocolError("a text packet is not UTF-8", offset: offset - UInt64(length))
            }
        }
        if status == .endOfData || status == .keepAlive, length != 0 {
            throw BackendProtocolError("a \(status) packet carries \(length) bytes (it carries none)", offset: offset - UInt64(length))
        }
        return BackendPacket(status, payload)
    }

    /// Exactly `count` bytes, nil at a clean end when `allowEnd` and nothing of them was read.
    private func take(_ count: Int, allowEnd: Bool) throws(BackendProtocolError) -> [UInt8]? {
        while buffer.count - start < count {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            if atEnd {
                if allowEnd && buffer.isEmpty { return nil }
                throw BackendProtocolError(
                    buffer.isEmpty ? "the stream ended" : "the stream ended inside a packet header", offset: offset + UInt64(buffer.count))
            }
            var chunk = [UInt8](repeating: 0, count: max(65_536, count - buffer.count))
            let read = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if read < 0 {
                if errno == EINTR { continue }
                throw BackendProtocolError("read failed: \(String(cString: strerror(errno)))", offset: offset)
            }
            if read == 0 { atEnd = true } else { buffer += chunk[0..<read] }
        }
        let bytes = Array(buffer[start..<(start + count)])
        start += count
        offset += UInt64(count)
        return bytes
    }

    private func describe(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? "'\(Character(UnicodeScalar(byte)))'" : String(format: "0x%02x", byte)
    }

    private func describe(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map { (0x20..<0x7F).contains($0) ? $0 : 0x3F }, as: UTF8.self)
    }
}

/// Writes packets to a file descriptor, whole and one at a time (several tasks send: volumes in parallel,
/// the keep-alive).
public final class BackendPacketWriter: Sendable {
    private let descriptor: Int32
    private let lock = NSLock()

    /// Writes to `descriptor` (not closed by the writer).
    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Sends one packet.
    public func send(_ packet: BackendPacket) throws(BackendProtocolError) {
        try send([packet])
    }

    /// Sends packets with nothing of another sender between them.
    public func send(_ packets: [BackendPacket]) throws(BackendProtocolError) {
        lock.lock()
        defer { lock.unlock() }
        for packet in packets { try write(packet.encoded()) }
    }

    /// The writer held by ``exclusively(_:)``: what it sends stays together.
    public struct Held {
        fileprivate let writer: BackendPacketWriter

        /// Sends one packet.
        public func send(_ packet: BackendPacket) throws(BackendProtocolError) { try writer.write(packet.encoded()) }
    }

    /// Runs `body` with the writer to itself: what it sends stays together (a whole file).
    public func exclusively<Result>(_ body: (Held) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(Held(writer: self))
    }

    fileprivate func write(_ bytes: [UInt8]) throws(BackendProtocolError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if written < 0 {
                if errno == EINTR { continue }
                throw BackendProtocolError("write to the plugin failed: \(String(cString: strerror(errno)))", offset: 0)
            }
            done += written
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
