/// A failure of the emulator itself (not an API error it serves): a bad seed or fault file, state it
/// cannot read or write, a data operation that failed. Says what failed, where, and what to do next.
public struct EmulatorError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case unreadableFile
        case invalidFile
        case stateWrite
        case dataOperation
        case server
        case externalKeystone
    }

    private let code: Code
    /// The file, volume or address concerned.
    public let subject: String
    /// What went wrong.
    public let message: String
    /// What to do next.
    public let hint: String?

    private init(_ code: Code, subject: String, message: String, hint: String?) {
        self.code = code
        self.subject = subject
        self.message = message
        self.hint = hint
    }

    /// A file could not be read.
    public static func unreadableFile(path: String, what: String, underlying: any Error) -> EmulatorError {
        EmulatorError(
            .unreadableFile, subject: path, message: "cannot read the \(what): \(underlying)",
            hint: "check the path and its permissions")
    }

    /// A file was read but its content is wrong.
    public static func invalidFile(path: String, what: String, reason: String) -> EmulatorError {
        EmulatorError(
            .invalidFile, subject: path, message: "invalid \(what): \(reason)",
            hint: "compare it with samples/emulator/demo.yaml and docs/emulator.md")
    }

    /// The state could not be saved.
    public static func stateWrite(path: String, underlying: any Error) -> EmulatorError {
        EmulatorError(
            .stateWrite, subject: path, message: "cannot save the emulator state: \(underlying)",
            hint: "check free space and permissions of the state directory")
    }

    /// A data operation (sparse file, copy, loop device, device link) failed.
    public static func dataOperation(subject: String, _ message: String) -> EmulatorError {
        EmulatorError(
            .dataOperation, subject: subject, message: message,
            hint: "check the state and device directories; loop devices need root and losetup")
    }

    /// The HTTP server could not start.
    public static func server(address: String, _ message: String) -> EmulatorError {
        EmulatorError(.server, subject: address, message: message, hint: "pick another port or address")
    }

    /// A call to the external Keystone (`--keystone`) failed.
    public static func externalKeystone(url: String, operation: String, _ message: String) -> EmulatorError {
        EmulatorError(
            .externalKeystone, subject: url, message: "\(operation): \(message)",
            hint: "check that Keystone is up at this URL and that the service account has the admin role there")
    }

    /// `<subject>: <message> (<hint>)`.
    public var description: String {
        "\(subject): \(message)" + (hint.map { " (\($0))" } ?? "")
    }
}
