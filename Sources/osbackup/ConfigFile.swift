import Foundation
import Yams

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

    /// One option of the file.
    enum Value: Equatable {
        case flag(Bool)
        case values([String])
    }

    /// The commands whose sections a file may hold.
    static let commands: Set = ["backup", "restore", "cleanup", "estimate"]

    /// The options of a file for `command`: the top-level ones, then its section's; keys with `_` spelled
    /// `-`, in the file's order.
    static func load(_ path: String, command: String) throws -> [(String, Value)] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigFileError("cannot read --config \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigFileError("--config \(path) is not YAML: \(error)")
        }
        guard let node else { return [] }
        guard let mapping = node.mapping else { throw ConfigFileError("--config \(path): expected a mapping of option names to values") }
        var options: [(String, Value)] = []
        for (keyNode, valueNode) in mapping {
            if let section = keyNode.string, commands.contains(section) {
                guard let entries = valueNode.mapping else { throw ConfigFileError("--config \(path): '\(section)' holds options of that command") }
                if section == command { options += try parse(entries.map { ($0.key, $0.value) }, path: path) }
                continue
            }
            options += try parse([(keyNode, valueNode)], path: path)
        }
        return options
    }

    private static func parse(_ entries: [(Node, Node)], path: String) throws -> [(String, Value)] {
        var options: [(String, Value)] = []
        for (keyNode, valueNode) in entries {
            guard let key = keyNode.string, !key.isEmpty else { throw ConfigFileError("--config \(path): a key is not a name") }
            let name = key.replacingOccurrences(of: "_", with: "-")
            guard name != "config" else { throw ConfigFileError("--config \(path): a config file cannot name another") }
            if let sequence = valueNode.sequence {
                options.append((name, .values(try sequence.map { try scalar($0, key: name, path: path) })))
            } else if let bool = valueNode.bool {
                options.append((name, .flag(bool)))
            } else {
                options.append((name, .values([try scalar(valueNode, key: name, path: path)])))
            }
        }
        return options
    }

    private static func scalar(_ node: Node, key: String, path: String) throws -> String {
        guard let text = node.scalar?.string else { throw ConfigFileError("--config \(path): '\(key)' takes a value or a list of values") }
        return text
    }
}

/// A `--config` file that cannot be used; the message names the file and the key.
struct ConfigFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
