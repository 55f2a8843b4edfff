import AsyncHTTPClient
public import Logging
public import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An HTTP request to an OpenStack service.
public struct OpenStackRequest: Sendable {
    /// `GET`, `POST`, `PUT`, `DELETE`, `HEAD`.
    public var method: String
    /// The full URL.
    public var url: String
    /// Headers other than the token.
    public var headers: [(String, String)]
    /// The token to send as `X-Auth-Token`.
    public var token: Secret?
    /// The JSON body.
    public var body: [UInt8]?
    /// Whether repeating the request is harmless (every method but `POST`): only those are retried.
    public var isIdempotent: Bool

    /// Creates a request.
    public init(
        method: String, url: String, headers: [(String, String)] = [], token: Secret? = nil, body: [UInt8]? = nil,
        isIdempotent: Bool? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.token = token
        self.body = body
        self.isIdempotent = isIdempotent ?? (method != "POST")
    }
}

/// An HTTP response from an OpenStack service.
public struct OpenStackResponse: Sendable {
    /// The status code.
    public var status: Int
    /// The headers, names lower-cased.
    public var headers: [String: String]
    /// The body.
    public var body: [UInt8]

    /// The request id the service gave the call.
    public var requestID: String? { headers["x-openstack-request-id"] ?? headers["x-compute-request-id"] }

    /// Decodes the body as JSON.
    public func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try JSONDecoder().decode(type, from: Data(body))
    }
}

/// How calls are retried: jittered exponential back-off with a cap, `Retry-After` honoured.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included.
    public var maximumAttempts: Int
    /// The first delay.
    public var initialDelay: Duration
    /// The longest delay.
    public var maximumDelay: Duration

    /// Creates a policy; defaults: 5 attempts, 0.5 s doubling up to 30 s.
    public init(maximumAttempts: Int = 5, initialDelay: Duration = .milliseconds(500), maximumDelay: Duration = .seconds(30)) {
        self.maximumAttempts = maximumAttempts
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1): a random point in the upper half of
    /// the exponential step, so that many clients do not retry in lock-step.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let base = initialDelay * (1 << min(attempt - 1, 16))
        let capped = min(base, maximumDelay)
        return .milliseconds(Int(Double(capped.wholeMilliseconds) * Double.random(in: 0.5...1.0)))
    }
}

/// Sends requests to OpenStack services over AsyncHTTPClient with the cloud's TLS and proxy settings,
/// retries what may be retried, and logs one line per call without any secret.
public final class OpenStackTransport: Sendable {
    private let direct: HTTPClient
    private let proxied: [ProxySettings.Server: HTTPClient]
    private let proxies: ProxySettings
    /// The retry policy.
    public let retryPolicy: RetryPolicy
    /// The time a call may take, response included.
    public let timeout: Duration

    /// Creates a transport for one cloud.
    ///
    /// - Parameters:
    ///   - caCertificatePath: a PEM bundle to trust instead of the system's roots.
    ///   - verifyTLS: false turns certificate verification off (log it: the caller warns).
    public init(
        caCertificatePath: String? = nil, verifyTLS: Bool = true, proxies: ProxySettings = ProxySettings(environment: ProcessInfo.processInfo.environment),
        retryPolicy: RetryPolicy = .init(), timeout: Duration = .seconds(120)
    ) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caCertificatePath { tls.trustRoots = .file(caCertificatePath) }
        if !verifyTLS { tls.certificateVerification = .none }
        func makeClient(_ proxy: ProxySettings.Server?) -> HTTPClient {
            var configuration = HTTPClient.Configuration(
                tlsConfiguration: tls, timeout: .init(connect: .seconds(15), read: .seconds(120)),
                proxy: proxy.map { .server(host: $0.host, port: $0.port) })
            configuration.httpVersion = .http1Only
            // A refused connection fails at once; `RetryPolicy` decides whether and when to try again.
            configuration.connectionPool.retryConnectionEstablishment = false
            return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        }
        direct = makeClient(nil)
        var proxied: [ProxySettings.Server: HTTPClient] = [:]
        for server in Set([proxies.http, proxies.https].compactMap { $0 }) { proxied[server] = makeClient(server) }
        self.proxied = proxied
        self.proxies = proxies
        self.retryPolicy = retryPolicy
        self.timeout = timeout
    }

    /// Runs `body` with a new transport and shuts it down on every path out, error or not.
    public static func withTransport<Result>(
        caCertificatePath: String? = nil, verifyTLS: Bool = true,
        proxies: ProxySettings = ProxySettings(environment: ProcessInfo.processInfo.environment),
        retryPolicy: RetryPolicy = .init(), timeout: Duration = .seconds(120),
        _ body: (OpenStackTransport) async throws -> Result
    ) async throws -> Result {
        let transport = OpenStackTransport(
            caCertificatePath: caCertificatePath, verifyTLS: verifyTLS, proxies: proxies, retryPolicy: retryPolicy,
            timeout: timeout)
        do {
            let result = try await body(transport)
            await transport.shutdown()
            return result
        } catch {
            await transport.shutdown()
            throw error
        }
    }

    /// Closes the connections; call once when done (``withTransport(caCertificatePath:verifyTLS:proxies:retryPolicy:timeout:_:)``
    /// does it for you). A transport dropped without it leaks its connections.
    public func shutdown() async {
        try? await direct.shutdown()
        for client in proxied.values { try? await client.shutdown() }
    }

    /// Sends `request`, retrying idempotent calls on connection errors, 5xx, 429 and 503 (honouring
    /// `Retry-After`); returns the final response whatever its status, or throws if the service could not
    /// be reached at all.
    public func send(_ request: OpenStackRequest, service: String, logger: Logger) async throws(OpenStackError) -> OpenStackResponse {
        let path = Self.loggablePath(request.url)
        let operation = "\(request.method) \(path)"
        var attempt = 1
        while true {
            let started = ContinuousClock.now
            do {
                let response = try await execute(request)
                let milliseconds = (ContinuousClock.now - started).wholeMilliseconds
                logger.debug(
                    "openstack call",
                    metadata: [
                        "osb-service": "\(service)", "osb-method": "\(request.method)", "osb-path": "\(path)",
                        "osb-status": "\(response.status)", "osb-ms": "\(milliseconds)",
                        "osb-request-id": "\(response.requestID ?? "-")",
                    ])
                let retryable = response.status == 429 || response.status == 503
                    || (request.isIdempotent && [500, 502, 504].contains(response.status))
                guard retryable, attempt < retryPolicy.maximumAttempts else { return response }
                let delay = retryAfter(response) ?? retryPolicy.delay(afterAttempt: attempt)
                logger.notice(
                    "retrying openstack call",
                    metadata: [
                        "osb-service": "\(service)", "osb-path": "\(path)", "osb-status": "\(response.status)",
                        "osb-attempt": "\(attempt)", "osb-delay-ms": "\(delay.wholeMilliseconds)",
                        "osb-request-id": "\(response.requestID ?? "-")",
                    ])
                try await cancellableSleep(for: delay, service: service, operation: operation)
            } catch let error as OpenStackError {
                throw error
            } catch {
                if Task.isCancelled || error is CancellationError { throw .cancelled(service: service, operation: operation) }
                guard request.isIdempotent, attempt < retryPolicy.maximumAttempts, !Task.isCancelled else {
                    logger.warning(
                        "openstack call failed",
                        metadata: ["osb-service": "\(service)", "osb-path": "\(path)", "osb-error": "\(error)"])
                    throw .transport(service: service, operation: operation, underlying: error)
                }
                logger.notice(
                    "retrying openstack call after a connection error",
                    metadata: ["osb-service": "\(service)", "osb-path": "\(path)", "osb-attempt": "\(attempt)", "osb-error": "\(error)"])
                try await cancellableSleep(for: retryPolicy.delay(afterAttempt: attempt), service: service, operation: operation)
            }
            attempt += 1
        }
    }

    private func execute(_ request: OpenStackRequest) async throws -> OpenStackResponse {
        guard let url = URL(string: request.url) else { throw URLError(.badURL) }
        let client = proxies.server(for: url).flatMap { proxied[$0] } ?? direct
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = HTTPMethod(rawValue: request.method)
        outgoing.headers.add(name: "Accept", value: "application/json")
        outgoing.headers.add(name: "User-Agent", value: "osbackup/0.1")
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let token = request.token { outgoing.headers.add(name: "X-Auth-Token", value: token.reveal()) }
        if let body = request.body {
            outgoing.headers.add(name: "Content-Type", value: "application/json")
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }
        let seconds = timeout.components.seconds
        let response = try await client.execute(outgoing, timeout: .seconds(seconds))
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        let body = try await response.body.collect(upTo: 64 << 20)
        return OpenStackResponse(status: Int(response.status.code), headers: headers, body: Array(buffer: body))
    }

    private func retryAfter(_ response: OpenStackResponse) -> Duration? {
        guard let value = response.headers["retry-after"], let seconds = Int(value.trimmingCharacters(in: .whitespaces)) else {
            return nil
        }
        return .seconds(min(max(seconds, 0), 300))
    }

    /// The URL's path for logs: no scheme, host or query string values.
    static func loggablePath(_ url: String) -> String {
        guard let components = URLComponents(string: url) else { return "?" }
        let query = components.queryItems.map { items in "?" + items.map(\.name).joined(separator: "&") } ?? ""
        return components.path + query
    }
}

extension Duration {
    /// The duration in whole milliseconds, for log metadata and back-off arithmetic.
    var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
