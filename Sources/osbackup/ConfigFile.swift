import BackupEngine
import Foundation

/// `--config FILE`: YAML whose keys are the long options' names (`proxy-server`, or `proxy_server`), read
/// before the command line is parsed; an option given on the command line wins over the file's.
///
/// Top-level keys are the options every cloud command takes (the cloud's, the proxy's, `state`); a
/// section named after a command (`backup:`, `restore:`, `cleanup:`) holds that command's own, and only
/// that command reads it. So one file serves every command.
///
/// ```yaml
/// os-cloud: production
/// proxy-server: 6f1c…
/// state: /var/lib/osbackup
/// backup:
///   parallel: 2
///   bwlimit: 200M
///   unattached-volumes: true
///   exclude-server: [bastion, "re:^ci-"]
/// ```
/// A scalar becomes `--key value`, a list `--key` once per item, `true` a flag, `false` nothing.
enum ConfigFile {
    /// The arguments with each `--config FILE` replaced by the file's options not already given.
    static func expand(_ arguments: [String]) throws -> [String] {
        guard let index = arguments.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) else { return arguments }
        let path: String
        var rest = arguments
        if arguments[index] == "--config" {
            guard index + 1 < arguments.count else { throw ConfigFileError("--config needs a file") }
            path = arguments[index + 1]
            rest.removeSubrange(index...(index + 1))
        } else {
            path = String(arguments[index].dropFirst("--config=".count))
            rest.remove(at: index)
        }
        let given = Set(rest.filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2).split(separator: "=", maxSplits: 1)[0]) })
        let options = try load(path, command: rest.first ?? "")
        var added: [String] = []
        for (key, value) in options where !given.contains(key) {
            switch value {
            case .flag(let on): if on { added.append("--\(key)") }
            case .values(let values): for value in values { added += ["--\(key)", value] }
            }
        }
        rest.insert(contentsOf: added, at: index)
        return rest
    }

    /// The options of a file for `command` (``OptionsFile``), as a usage error when it cannot be used.
    static func load(_ path: String, command: String) throws -> [(String, OptionsFile.Value)] {
        do {
            return try OptionsFile.load(path, command: command)
        } catch {
            throw ConfigFileError(error.description)
        }
    }
}

/// A `--config` file that cannot be used; the message names the file and the key.
struct ConfigFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
