import Foundation
import Yams

/// An options file (`--config FILE`, `config=` on the Bacula Plugin line): YAML whose keys are the long
/// options' names (`proxy-server` or `proxy_server`). Top-level keys are the options every cloud command
/// takes; a section named after a command (`backup:`, `restore:`, `cleanup:`, `estimate:`) holds that
/// command's own, read only by it. A scalar is a value, a list repeats the option, a boolean is a flag.
public enum OptionsFile {
    /// One option of the file.
    public enum Value: Equatable {
        case flag(Bool)
        case values([String])
    }

    /// The commands whose sections a file may hold.
    public static let commands: Set = ["backup", "restore", "cleanup", "estimate"]

    /// The options of a file for `command`: the top-level ones, then its section's; keys with `_` spelled
    /// `-`, in the file's order.
    public static func load(_ path: String, command: String) throws(BackupError) -> [(String, Value)] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw BackupError(.configuration, resource: "options file", "cannot read \(path): \(error.localizedDescription)")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw BackupError(.configuration, resource: "options file", "\(path) is not YAML: \(error)")
        }
        guard let node else { return [] }
        guard let mapping = node.mapping else { throw BackupError(.configuration, resource: "options file", "\(path): expected a mapping of option names to values") }
        var options: [(String, Value)] = []
        for (keyNode, valueNode) in mapping {
            if let section = keyNode.string, commands.contains(section) {
                guard let entries = valueNode.mapping else { throw BackupError(.configuration, resource: "options file", "\(path): '\(section)' holds options of that command") }
                if section == command { options += try parse(entries.map { ($0.key, $0.value) }, path: path) }
                continue
            }
            options += try parse([(keyNode, valueNode)], path: path)
        }
        return options
    }

    private static func parse(_ entries: [(Node, Node)], path: String) throws(BackupError) -> [(String, Value)] {
        var options: [(String, Value)] = []
        for (keyNode, valueNode) in entries {
            guard let key = keyNode.string, !key.isEmpty else { throw BackupError(.configuration, resource: "options file", "\(path): a key is not a name") }
            let name = key.replacingOccurrences(of: "_", with: "-")
            guard name != "config" else { throw BackupError(.configuration, resource: "options file", "\(path): a config file cannot name another") }
            if let sequence = valueNode.sequence {
                var values: [String] = []
                for item in sequence { values.append(try scalar(item, key: name, path: path)) }
                options.append((name, .values(values)))
            } else if let bool = valueNode.bool {
                options.append((name, .flag(bool)))
            } else {
                options.append((name, .values([try scalar(valueNode, key: name, path: path)])))
            }
        }
        return options
    }

    private static func scalar(_ node: Node, key: String, path: String) throws(BackupError) -> String {
        guard let text = node.scalar?.string else { throw BackupError(.configuration, resource: "options file", "\(path): '\(key)' takes a value or a list of values") }
        return text
    }
}
