import Foundation
import HTTPTypes
import Hummingbird
public import Logging
import NIOCore
import OpenStackClient

/// The OpenStack emulator: a Keystone v3, Nova v2.1 and Cinder v3 subset on one HTTP port, with volumes
/// as sparse files in a state directory and the backup proxy's attached volumes as device links.
///
/// URL layout (one port, `http://HOST:PORT`):
/// - Keystone: `/` (300 version list), `/v3` (version document), `/v3/auth/tokens`, `/v3/auth/catalog`,
///   `/v3/auth/projects`; the auth URL is `http://HOST:PORT/v3`.
/// - Nova: `/compute` (version list), `/compute/v2.1` (version document and API).
/// - Cinder: `/volume` (version list), `/volume/v3/` (version document), `/volume/v3/<project id>/...`.
///
/// ```swift
/// try await withRunningEmulator(configuration: .init(stateDirectory: dir), seed: seed) { cloud in
///     print(cloud.authURL)
/// }
/// ```
public struct CloudEmulator: Sendable {
    /// The configuration it runs with.
    public let configuration: EmulatorConfiguration
    let state: CloudState
    let logger: Logger

    /// Loads the state directory, or seeds it from `seed` when it holds no state yet.
    public init(configuration: EmulatorConfiguration, seed: EmulatorSeed? = nil, logger: Logger = Logger(label: "osbackup.emulator"))
        throws
    {
        self.configuration = configuration
        self.logger = logger
        self.state = try CloudState(configuration: configuration, seed: seed, logger: logger)
    }

    /// Serves until the task is cancelled; calls `onReady` once the port is bound (and, with an external
    /// Keystone, once the seed is enrolled there and the endpoints are registered). On the way out the
    /// proxy's devices are removed (loop devices detached; they come back at the next start) and an
    /// external Keystone's catalog is put back as it was.
    public func run(onReady: @escaping @Sendable (RunningEmulator) async -> Void = { _ in }) async throws {
        guard let external = configuration.externalKeystone else {
            return try await serve(front: nil, onReady: onReady)
        }
        try await OpenStackTransport.withTransport(
            caCertificatePath: external.service.caCertificatePath, verifyTLS: external.service.verifyTLS
        ) { transport in
            // A short margin: the service token is used almost to its end (a 401 renews it anyway), so a
            // Keystone with short tokens is not asked for a new one on every validation.
            let session = KeystoneSession(configuration: external.service, transport: transport, renewalMargin: 5, logger: logger)
            let api = KeystoneAdminAPI(session: session)
            let front = KeystoneFront(
                api: api,
                validator: ExternalTokenValidator(session: session, cacheLifetime: external.tokenCacheLifetime, logger: logger),
                registration: CatalogRegistration(api: api, stateDirectory: configuration.stateDirectory, logger: logger))
            try await serve(front: front, onReady: onReady)
        }
    }

    /// The external Keystone's parts while the emulator runs behind it.
    private struct KeystoneFront: Sendable {
        var api: KeystoneAdminAPI
        var validator: ExternalTokenValidator
        var registration: CatalogRegistration
    }

    private func serve(front: KeystoneFront?, onReady: @escaping @Sendable (RunningEmulator) async -> Void) async throws {
        let state = self.state
        let configuration = self.configuration
        let logger = self.logger
        if let front {
            do {
                try await front.registration.withdraw()  // what a crashed run left in the catalog, first
                let map = try await KeystoneEnrolment(api: front.api, logger: logger).enrol(await state.snapshot())
                await state.adopt(map)
            } catch is CancellationError {
                logger.info("emulator stopped before it served")
                return
            }
        }
        let responder = CallbackResponder { (request: Request, _: BasicRequestContext) in
            try await Self.respond(to: request, state: state, validator: front?.validator)
        }
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in boundContinuation.yield(channel.localAddress?.port ?? configuration.port) },
            logger: Self.serverLogger(logger))
        var failure: (any Error)?
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.run() }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(20))
                        await state.tick(now: Date())
                    }
                }
                group.addTask {
                    // Ends only when cancelled: the stream is never finished.
                    for await port in bound {
                        let baseURL = "http://\(configuration.host):\(port)"
                        await state.setBaseURL(baseURL)
                        try await front?.registration.register(baseURL: baseURL, region: state.region)
                        await state.restoreDevices()
                        let running = RunningEmulator(
                            baseURL: baseURL, port: port, stateDirectory: configuration.stateDirectory,
                            deviceDirectory: configuration.effectiveDeviceDirectory,
                            identityURL: front?.api.identityURL ?? baseURL + "/v3", region: state.region)
                        logger.info("emulator listening", metadata: ["osb-url": "\(running.authURL)", "osb-region": "\(running.region)"])
                        await onReady(running)
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch is CancellationError {
        } catch {
            failure = error
        }
        await state.releaseDevices()
        if let front {
            do {
                // Not cancelled with the server: the catalog must be put back whatever stopped it.
                let registration = front.registration
                try await Task { try await registration.withdraw() }.value
            } catch {
                logger.error(
                    "cannot put the Keystone catalog back; the next start retries from the journal",
                    metadata: ["osb-error": "\(error)", "osb-journal": "\(configuration.stateDirectory)/\(CatalogRegistration.journalName)"])
                failure = failure ?? error
            }
        }
        logger.info("emulator stopped")
        if let failure { throw failure }
    }

    /// Hummingbird's own logger: it reports a cancelled listener as an error on every stop, so it only
    /// speaks at `critical`; the emulator logs requests and failures itself.
    private static func serverLogger(_ logger: Logger) -> Logger {
        var quiet = logger
        quiet.logLevel = .critical
        return quiet
    }

    private static func respond(to request: Request, state: CloudState, validator: ExternalTokenValidator?) async throws -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        let buffer = try await request.body.collect(upTo: 16 << 20)
        var emulatorRequest = EmulatorRequest(
            method: request.method.rawValue, path: request.uri.path, rawQuery: request.uri.query, headers: headers,
            body: Array(buffer.readableBytesView))
        if let validator, ["compute", "volume"].contains(emulatorRequest.segments.first), let token = emulatorRequest.header("X-Auth-Token") {
            emulatorRequest.externalAuthentication = await validator.authenticate(token)
        }
        let (response, latency) = await state.handle(emulatorRequest)
        if latency > 0 { try await Task.sleep(for: .milliseconds(Int(latency * 1000))) }
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        return Response(
            status: HTTPResponse.Status(code: response.status), headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body)))
    }
}

/// A running emulator: where it listens and where its data is.
public struct RunningEmulator: Sendable {
    /// `http://HOST:PORT`.
    public let baseURL: String
    /// The bound port.
    public let port: Int
    /// The state directory.
    public let stateDirectory: String
    /// The device directory (attached volumes appear under `disk/by-id/`).
    public let deviceDirectory: String
    /// The Keystone clients authenticate with: `http://HOST:PORT/v3`, or the external Keystone's v3 URL.
    public let identityURL: String
    /// The region of the emulator's endpoints.
    public let region: String

    /// Keystone's auth URL (``identityURL``).
    public var authURL: String { identityURL }
    /// Nova's endpoint, `http://HOST:PORT/compute/v2.1`.
    public var computeURL: String { baseURL + "/compute/v2.1" }
    /// Cinder's endpoint for a project, `http://HOST:PORT/volume/v3/<project id>`.
    public func volumeURL(projectID: String) -> String { baseURL + "/volume/v3/" + projectID }
    /// Where the proxy sees volume `id` once attached.
    public func devicePath(volumeID: String) -> String { "\(deviceDirectory)/disk/by-id/virtio-\(volumeID.prefix(20))" }
    /// The file holding volume `id`.
    public func volumeFile(volumeID: String) -> String { "\(stateDirectory)/volumes/\(volumeID).img" }

    /// Every server, volume, snapshot and attachment now.
    public func inventory() throws -> EmulatorInventory {
        try EmulatorInventory.load(stateDirectory: stateDirectory, deviceDirectory: deviceDirectory)
    }

    /// The device directory of the proxy named `name`: ``deviceDirectory`` for the seed's first proxy,
    /// `<deviceDirectory>/<name>` for each further one.
    public func deviceDirectory(ofProxy name: String) throws -> String {
        guard let server = try inventory().servers.first(where: { $0.name == name }), let directory = server.deviceDirectory else {
            throw EmulatorError.invalidFile(
                path: stateDirectory, what: "emulator state", reason: "no server named '\(name)' has proxy: true in the seed")
        }
        return directory
    }

    /// A clouds.yaml using the seed's admin credentials, with one cloud per proxy: `cloudName` for the
    /// seed's first proxy (and for a seed without one), `<cloudName>-<proxy name>` for each further proxy.
    /// Each names its proxy's server id (`osbackup_proxy_server`) and device directory
    /// (`osbackup_device_directory`), so an osbackup on that proxy only needs the cloud's name.
    public func cloudsYAML(cloudName: String = "emulator") throws -> String {
        guard let records = try StateFile.read(stateDirectory: stateDirectory), let userName = records.adminUser,
            let user = records.users.first(where: { $0.name == userName })
        else {
            throw EmulatorError.invalidFile(
                path: stateDirectory, what: "emulator state", reason: "the seed declares no admin user for clouds.yaml")
        }
        let project = records.adminProject.flatMap { name in records.projects.first { $0.name == name || $0.id == name } }
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        func entry(_ name: String, proxy: ServerRecord?) -> String {
            // osbackup reads the proxy host's server id from here (`osbackup doctor`, backups) ...
            var proxyLines = proxy.map { "\n    osbackup_proxy_server: \(quoted($0.id))" } ?? ""
            // ... and where the proxy sees attached volumes (the emulator's device folder, not /dev).
            proxyLines += "\n    osbackup_device_directory: \(quoted(proxy?.deviceDirectory(root: deviceDirectory) ?? deviceDirectory))"
            return """
                  \(name):
                    auth_type: password
                    auth:
                      auth_url: \(quoted(authURL))
                      username: \(quoted(user.name))
                      password: \(quoted(user.password))
                      project_name: \(quoted(project?.name ?? ""))
                      user_domain_name: Default
                      project_domain_name: Default
                    region_name: \(quoted(region))
                    interface: public
                    identity_api_version: 3\(proxyLines)

                """
        }
        let proxies = records.servers.filter(\.isProxy)
        var text = "clouds:\n" + entry(cloudName, proxy: proxies.first)
        for proxy in proxies.dropFirst() { text += entry("\(cloudName)-\(proxy.name)", proxy: proxy) }
        return text
    }
}

/// Runs an emulator for the duration of `body` (on port 0 unless configured), then stops it.
public func withRunningEmulator<Result: Sendable>(
    configuration: EmulatorConfiguration, seed: EmulatorSeed? = nil, logger: Logger = Logger(label: "osbackup.emulator"),
    _ body: (RunningEmulator) async throws -> Result
) async throws -> Result {
    let emulator = try CloudEmulator(configuration: configuration, seed: seed, logger: logger)
    let (ready, continuation) = AsyncStream.makeStream(of: RunningEmulator.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { continuation.finish() }
            try await emulator.run { continuation.yield($0) }
        }
        var iterator = ready.makeAsyncIterator()
        guard let running = await iterator.next() else {
            try await group.next()
            throw EmulatorError.server(address: "\(configuration.host):\(configuration.port)", "the emulator stopped before it was ready")
        }
        do {
            let result = try await body(running)
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}
