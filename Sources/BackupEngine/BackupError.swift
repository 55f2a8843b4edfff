public import BlockDelta
public import OpenStackClient

/// An error of a cloud job with a kind a program can act on, next to the message a person reads.
///
/// The kind tells cleanup a cancel from a timeout from a 404, and lets the CLI choose its exit code.
public struct BackupError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure it is.
    public enum Kind: String, Sendable, Codable {
        /// A lock is held or a resource is in use (another backup, an attached volume).
        case busy
        /// A server, volume or backup does not exist.
        case notFound
        /// The resource is in a state that forbids the operation (409, a refused state).
        case conflict
        /// A disk or a quota is full (ENOSPC, Cinder 413).
        case noSpace
        /// Stored data failed a checksum or a chain check.
        case integrity
        /// The job was cancelled (SIGINT, SIGTERM, a cancel request).
        case cancelled
        /// A resource did not reach a status, or a device did not appear, in time.
        case timeout
        /// The command line or the configuration is wrong.
        case configuration
        /// Any other failure of the cloud or the machine.
        case failed
    }

    /// What kind of failure it is.
    public let kind: Kind
    /// The resource the error is about (`volume 9d8a…`, `server web-1`), when there is one.
    public let resource: String?
    /// What failed, with the cause.
    public let message: String
    /// What to do next.
    public let hint: String?

    /// Creates an error.
    public init(_ kind: Kind, resource: String? = nil, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.resource = resource
        self.message = message
        self.hint = hint
    }

    /// One line: resource, message, hint.
    public var description: String {
        var line = resource.map { "\($0): \(message)" } ?? message
        if let hint { line += " (\(hint))" }
        return line
    }

    /// The error of an OpenStack call, classified, about `resource`.
    public static func cloud(_ error: OpenStackError, resource: String?) -> BackupError {
        let kind: Kind
        if error.isCancellation {
            kind = .cancelled
        } else if error.isTimeout {
            kind = .timeout
        } else if error.isQuotaExceeded {
            kind = .noSpace
        } else {
            switch error.status {
            case 404: kind = .notFound
            case 409: kind = .conflict
            case 401: kind = .configuration
            default: kind = .failed
            }
        }
        return BackupError(kind, resource: resource, kind == .cancelled ? "cancelled" : "\(error)")
    }

    /// The error of the engine, classified, about `resource`.
    public static func engine(_ error: BlockDeltaError, resource: String?) -> BackupError {
        let kind: Kind
        if error.isCancellation {
            kind = .cancelled
        } else if error.isNoSpace {
            kind = .noSpace
        } else if error.isDataIntegrityError {
            kind = .integrity
        } else if error.isConfigurationError {
            kind = .configuration
        } else if error.isBusy {
            kind = .busy
        } else {
            kind = .failed
        }
        return BackupError(kind, resource: resource, kind == .cancelled ? "cancelled" : "\(error)")
    }

    /// Any error, classified.
    public static func from(_ error: any Error, resource: String?) -> BackupError {
        switch error {
        case let error as BackupError: return error
        case let error as OpenStackError: return cloud(error, resource: resource)
        case let error as BlockDeltaError: return engine(error, resource: resource)
        case is CancellationError: return BackupError(.cancelled, resource: resource, "cancelled")
        default: return BackupError(.failed, resource: resource, "\(error)")
        }
    }
}
