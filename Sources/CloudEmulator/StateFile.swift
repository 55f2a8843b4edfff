import Foundation

/// `cloud.json` in the state directory: every record as JSON, replaced atomically (temporary file,
/// rename) after each change, so `osbackup emulator inventory` can read it while the emulator runs.
enum StateFile {
    /// The file name.
    static let name = "cloud.json"

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }

    /// Writes the records atomically.
    static func write(_ records: CloudRecords, to path: String) throws {
        do {
            let data = try encoder().encode(records)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw EmulatorError.stateWrite(path: path, underlying: error)
        }
    }

    /// Reads the records, or nil when the directory has no state yet.
    static func read(stateDirectory: String) throws -> CloudRecords? {
        let path = stateDirectory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EmulatorError.unreadableFile(path: path, what: "emulator state", underlying: error)
        }
        do {
            return try decoder().decode(CloudRecords.self, from: data)
        } catch {
            throw EmulatorError.invalidFile(path: path, what: "emulator state", reason: "\(error)")
        }
    }
}
