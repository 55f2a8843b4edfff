import BaculaBridge
import Foundation
import Testing

/// Writes `bytes` into a pipe, closes it, and reads packets until the end or an error.
private func readAll(_ bytes: [UInt8]) throws -> [BackendPacket] {
    var descriptors: [Int32] = [0, 0]
    #expect(pipe(&descriptors) == 0)
    defer { close(descriptors[0]) }
    let writeEnd = descriptors[1]
    let writer = Thread {
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let written = write(writeEnd, buffer.baseAddress! + done, buffer.count - done)
                if written <= 0 { break }
                done += written
            }
        }
        close(writeEnd)
    }
    writer.start()
    let reader = BackendPacketReader(descriptor: descriptors[0])
    var packets: [BackendPacket] = []
    while let packet = try reader.next() { packets.append(packet) }
    return packets
}

@Suite("Plugin protocol framing")
struct BackendPacketTests {
    @Test("packets round-trip: text, empty end-of-data, large data split by nothing")
    func roundTrip() throws {
        let data = (0..<999_999).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let packets = [
            BackendPacket(.command, text: "Hello openstack-fd 1"), BackendPacket(.endOfData), BackendPacket(.data, data),
            BackendPacket(.warning, text: "volume ünïcode ⚠"), BackendPacket(.keepAlive),
        ]
        #expect(Array(BackendPacket(.command, text: "OK").encoded()) == Array("C000002\nOK".utf8))
        #expect(try readAll(packets.flatMap { $0.encoded() }) == packets)
    }

    @Test("malformed input is refused with what and where, never a crash or a hang", arguments: [
        ("X000002\nOK", "unknown packet status 'X'"),
        ("C00a002\nOK", "not six decimal digits"),
        ("C000002 OK", "does not end with a newline"),
        ("C000010\nshort", "ended inside a packet"),
        ("C0000", "inside a packet header"),
        ("F000001\nx", "carries 1 bytes"),
        ("C000003\na\u{0}b", "NUL"),
    ])
    func malformed(input: String, expected: String) {
        let error = #expect(throws: BackendProtocolError.self) { _ = try readAll(Array(input.utf8)) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }

    @Test("a text packet that is not UTF-8 is refused")
    func notUTF8() {
        let error = #expect(throws: BackendProtocolError.self) { _ = try readAll(Array("C000002\n".utf8) + [0xC3, 0x28]) }
        #expect(error?.description.contains("not UTF-8") == true)
    }

    @Test("a clean end between packets is the end of the stream")
    func cleanEnd() throws {
        #expect(try readAll(Array("C000002\nOKF000000\n".utf8)).map(\.status) == [.command, .endOfData])
        #expect(try readAll([]).isEmpty)
    }
}
