import Foundation

/// A failed call to an OpenStack service, or a failure to reach it, with the context an operator needs:
/// the service, the call, the HTTP status, the request id to find it in the service's logs, the message
/// the service gave, and what to do next. Never holds a token, password or secret.
public struct OpenStackError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case http
        case transport
        case invalidResponse
        case noEndpoint
        case timeout
        case quota
        case unexpectedStatus
        case cancelled
    }

    private let code: Code
    /// The service (`identity`, `compute`, `block-storage`).
    public let service: String
    /// The call, e.g. `POST /v3/auth/tokens`.
    public let operation: String
    /// The HTTP status, when there was a response.
    public let status: Int?
    /// The `x-openstack-request-id` (or `x-compute-request-id`) of the response.
    public let requestID: String?
    /// The message: the service's own text, or what went wrong on the way.
    public let message: String
    /// What to do next.
    public let hint: String?

    private init(
        _ code: Code, service: String, operation: String, status: Int? = nil, requestID: String? = nil,
        message: String, hint: String? = nil
    ) {
        self.code = code
        self.service = service
        self.operation = operation
        self.status = status
        self.requestID = requestID
        self.message = message
        self.hint = hint
    }

    /// The service answered with an error status.
    public static func http(
        service: String, operation: String, status: Int, requestID: String?, body: [UInt8]
    ) -> OpenStackError {
        let message = ErrorBody.message(from: body) ?? "HTTP \(status)"
        let isQuota = status == 413 || (status == 403 && message.lowercased().contains("quota"))
        return OpenStackError(
            isQuota ? .quota : .http, service: service, operation: operation, status: status, requestID: requestID,
            message: message, hint: hint(status: status, isQuota: isQuota, service: service))
    }

    /// The service could not be reached or the connection broke.
    public static func transport(service: String, operation: String, underlying: any Error) -> OpenStackError {
        OpenStackError(
            .transport, service: service, operation: operation, message: "\(underlying)",
            hint: "check that the endpoint is reachable from this host, its TLS settings and any proxy")
    }

    /// The response could not be understood.
    public static func invalidResponse(
        service: String, operation: String, status: Int?, requestID: String?, _ message: String
    ) -> OpenStackError {
        OpenStackError(
            .invalidResponse, service: service, operation: operation, status: status, requestID: requestID,
            message: message, hint: "the service answered in an unexpected shape; check its version")
    }

    /// The catalog has no endpoint for a service.
    public static func noEndpoint(service: String, interfaces: [EndpointInterface], region: String?, regions: [String])
        -> OpenStackError
    {
        let where_ = region.map { " in region \($0)" } ?? ""
        return OpenStackError(
            .noEndpoint, service: service, operation: "endpoint lookup",
            message:
                "the catalog has no \(interfaces.map(\.rawValue).joined(separator: "/")) endpoint for \(service)\(where_)",
            hint: regions.isEmpty
                ? "ask the cloud operator whether the service exists, or set an endpoint override"
                : "regions with this service: \(regions.joined(separator: ", "))")
    }

    /// A resource did not reach the wanted status in time.
    public static func timeout(service: String, operation: String, _ message: String) -> OpenStackError {
        OpenStackError(.timeout, service: service, operation: operation, message: message, hint: nil)
    }

    /// The task was cancelled (SIGINT/SIGTERM, a job cancel) while the call or a wait was under way.
    ///
    /// The client's functions throw only `OpenStackError`, so a `CancellationError` travels as this case:
    /// callers test ``isCancellation`` and never mistake a cancel for a timeout or a transport failure.
    public static func cancelled(service: String, operation: String) -> OpenStackError {
        OpenStackError(.cancelled, service: service, operation: operation, message: "cancelled", hint: nil)
    }

    /// Whether the task was cancelled; nothing failed in the cloud.
    public var isCancellation: Bool { code == .cancelled }
    /// Whether a resource did not reach the wanted status in time.
    public var isTimeout: Bool { code == .timeout }

    /// Whether the error is an HTTP status (any).
    public var isHTTPError: Bool { code == .http || code == .quota }
    /// Whether retrying cannot help: a quota was hit.
    public var isQuotaExceeded: Bool { code == .quota }
    /// Whether the connection failed before a response.
    public var isTransportError: Bool { code == .transport }

    /// One line: service, call, status, request id, message, hint.
    public var description: String {
        var line = "\(service) \(operation)"
        if let status { line += " answered \(status)" } else { line += " failed" }
        if let requestID { line += " [\(requestID)]" }
        line += ": \(message)"
        if let hint { line += " (\(hint))" }
        return line
    }

    private static func hint(status: Int, isQuota: Bool, service: String) -> String? {
        if isQuota { return "a quota is exhausted: free resources or ask for a larger quota; retrying will not help" }
        switch status {
        case 401: return "the credentials were refused: check the user, password or application credential and the project"
        case 403: return "the user lacks a role this call needs"
        case 404: return "the resource or URL does not exist"
        case 409: return "the resource is busy or in the wrong state; it may be in a task, try again later"
        case 429, 503: return "the service is overloaded; it was retried with back-off"
        case 500...: return "the service failed; look it up in the \(service) logs by the request id"
        default: return nil
        }
    }
}

/// The error bodies OpenStack services answer with.
enum ErrorBody {
    /// The human message of an error body, whatever its shape:
    /// - Keystone: `{"error": {"code", "message", "title"}}`
    /// - Nova and Cinder: `{"<kind>": {"code", "message"}}` with kind `badRequest`, `itemNotFound`,
    ///   `overLimit`, `forbidden`, `conflictingRequest`, `computeFault`, ...
    /// - some middleware: `{"message": "..."}` or `{"error_message": ...}`, or plain text.
    static func message(from body: [UInt8]) -> String? {
        guard !body.isEmpty else { return nil }
        if let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] {
            if let text = object["message"] as? String { return text }
            if let text = object["error_message"] as? String { return text }
            for value in object.values {
                if let inner = value as? [String: Any], let text = inner["message"] as? String {
                    let title = inner["title"] as? String
                    return title.map { "\($0): \(text)" } ?? text
                }
                if let text = value as? String, object.count == 1 { return text }
            }
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
