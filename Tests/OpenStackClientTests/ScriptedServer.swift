import Foundation
import TestSupport

/// A real HTTP(S) server on loopback that answers from a script (`scripts/scripted-http-server.py`), for
/// the client behaviours a healthy service never shows: retries, `Retry-After`, TLS trust, ambiguous
/// create failures, pagination.
final class ScriptedServer: @unchecked Sendable {
    // Immutable after init; the process is only touched in init and stop().
    struct Rule {
        var method: String
        var path: String
        var status: Int
        var headers: [String: String] = [:]
        var body: Any = ""
        var times: Int? = nil

        var json: [String: Any] {
            var object: [String: Any] = ["method": method, "path": path, "status": status, "headers": headers, "body": body]
            if let times { object["times"] = times }
            return object
        }
    }

    struct LoggedRequest {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    let port: Int
    let scheme: String
    private let process: Process
    private let logPath: String

    var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    init(rules: [Rule], directory: String, tls: (cert: String, key: String)? = nil) throws {
        let rulesPath = "\(directory)/rules.json"
        logPath = "\(directory)/requests.jsonl"
        try JSONSerialization.data(withJSONObject: rules.map(\.json)).write(to: URL(fileURLWithPath: rulesPath))
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/scripted-http-server.py").path
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, rulesPath, logPath] + (tls.map { ["--cert", $0.cert, "--key", $0.key] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        // Not the test process's stderr: an orphaned server would hold `swift test`'s pipe open.
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            process.terminate()
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "scripted server did not start"])
        }
        self.port = port
        scheme = tls == nil ? "http" : "https"
    }

    /// Kills the server. No `waitUntilExit()`: on Linux it can block an async test forever; Foundation
    /// reaps the child itself.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
    }

    var requests: [LoggedRequest] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return LoggedRequest(
                method: object["method"] as? String ?? "", path: object["path"] as? String ?? "",
                headers: object["headers"] as? [String: String] ?? [:], body: object["body"] as? String ?? "")
        }
    }

    /// A Keystone token answer whose catalog points compute and block-storage at this server.
    static func tokenRule(scheme: String = "http", expiresIn seconds: TimeInterval = 3600) -> Rule {
        let formatter = ISO8601DateFormatter()
        let expires = formatter.string(from: Date().addingTimeInterval(seconds)).replacingOccurrences(of: "Z", with: ".000000Z")
        func service(_ type: String, _ url: String) -> [String: Any] {
            ["type": type, "id": type, "name": type, "endpoints": [["id": type, "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": url]]]
        }
        let body: [String: Any] = [
            "token": [
                "methods": ["password"], "user": ["id": "u1", "name": "tester", "domain": ["id": "default", "name": "Default"]],
                "expires_at": expires, "issued_at": formatter.string(from: Date()).replacingOccurrences(of: "Z", with: ".000000Z"),
                "project": ["id": "p1", "name": "proj", "domain": ["id": "default", "name": "Default"]],
                "roles": [["id": "r1", "name": "member"]],
                "catalog": [service("compute", "\(scheme)://127.0.0.1:$PORT/compute/v2.1"), service("volumev3", "\(scheme)://127.0.0.1:$PORT/volume/v3/p1")],
            ]
        ]
        return Rule(method: "POST", path: "/v3/auth/tokens", status: 201, headers: ["X-Subject-Token": "scripted-token-1"], body: body)
    }
}

/// Makes a CA and a server certificate for 127.0.0.1 with the openssl command.
func makeTestCertificates(in directory: String) throws -> (ca: String, cert: String, key: String) {
    func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openssl \(arguments.first ?? "") failed"])
        }
    }
    let ca = "\(directory)/ca.pem", caKey = "\(directory)/ca.key", cert = "\(directory)/server.pem", key = "\(directory)/server.key"
    try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=osbackup test CA"])
    try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", "\(directory)/server.csr", "-subj", "/CN=127.0.0.1"])
    try "subjectAltName=IP:127.0.0.1\n".write(toFile: "\(directory)/san.ext", atomically: true, encoding: .utf8)
    try openssl([
        "x509", "-req", "-in", "\(directory)/server.csr", "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", "\(directory)/san.ext",
    ])
    return (ca, cert, key)
}
