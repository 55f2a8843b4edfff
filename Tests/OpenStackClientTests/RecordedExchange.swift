import Foundation
@testable import OpenStackClient

/// One request/response exchange recorded from a real Keystone or cinder-api (`Recorded/`).
struct RecordedExchange: CustomStringConvertible {
    let name: String
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    var description: String { name }

    var response: OpenStackResponse { OpenStackResponse(status: status, headers: headers, body: body) }

    /// Every recorded exchange of `folder` (`real-keystone`, `real-cinder-api`).
    static func all(in folder: String) -> [RecordedExchange] {
        guard let root = Bundle.module.resourcePath.map({ "\($0)/Recorded/\(folder)" }),
            let names = try? FileManager.default.contentsOfDirectory(atPath: root)
        else { return [] }
        return names.filter { $0.hasSuffix(".headers") }.sorted().compactMap { file in
            let name = String(file.dropLast(".headers".count))
            return load("\(root)/\(name)", name: name)
        }
    }

    static func named(_ name: String, in folder: String) -> RecordedExchange? {
        all(in: folder).first { $0.name == name }
    }

    private static func load(_ base: String, name: String) -> RecordedExchange? {
        guard let text = try? String(contentsOfFile: base + ".headers", encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline)
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = (try? Data(contentsOf: URL(fileURLWithPath: base + ".json"))).map { [UInt8]($0) } ?? []
        return RecordedExchange(name: name, status: status, headers: headers, body: body)
    }
}
