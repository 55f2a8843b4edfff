import BlockDelta
import CArchive

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the tar writer and reader share around libarchive: the UTF-8 locale its calls run in, and its
/// errors turned into ``BlockDeltaError``s.
enum ArchiveSupport {
    /// The C.UTF-8 locale, made once (nil if the C library has none: then pathnames are ASCII-only safe).
    nonisolated(unsafe) private static let utf8Locale: locale_t? = osb_archive_utf8_locale()

    /// Whether pathnames beyond ASCII can be written: the C.UTF-8 locale exists, or the process runs in a
    /// UTF-8 locale (libarchive 3.6 crashes on a pathname it cannot convert).
    static var handlesUTF8: Bool {
        utf8Locale != nil || String(cString: nl_langinfo(nl_item(CODESET))) == "UTF-8"
    }

    /// Runs `body` with the calling thread in the C.UTF-8 locale, whatever the process locale (daemons run
    /// in the C locale): libarchive 3.6 converts pathnames through the locale's charset, and pax headers are
    /// UTF-8. Only this thread's locale changes, and only for the call.
    static func withUTF8Locale<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        guard let utf8Locale else { return try body() }
        let previous = osb_archive_use_locale(utf8Locale)
        defer { _ = osb_archive_use_locale(previous) }
        return try body()
    }

    /// The error of a failed libarchive call on `archive`: the `errno` when libarchive recorded one (with
    /// `hint`, or a broken-pipe hint for `EPIPE`), else libarchive's message.
    static func error(
        _ archive: OpaquePointer, _ operation: String, path: String, hint: String? = nil
    ) -> BlockDeltaError {
        let code = archive_errno(archive)
        let message = archive_error_string(archive).map { String(cString: $0) }
        if code == EPIPE {
            return .io(
                operation, path: path, errno: code,
                hint: "the reader of the stream went away; check the command that reads osbackup's output")
        }
        if code > 0, message == nil || message == String(cString: strerror(code)) {
            return .io(operation, path: path, errno: code, hint: hint)
        }
        let reason = message.map { "\(operation) failed: \($0)" } ?? "\(operation) failed"
        return .failed(path: path, code > 0 ? "\(reason) (\(String(cString: strerror(code))))" : reason, hint: hint)
    }
}
