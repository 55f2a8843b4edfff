public import BackupEngine

/// The restore options an operator fills in bconsole (`restore` … `mod` → Plugin Options), in Bacula's
/// plugin-configuration text.
///
/// A Full backup stores ``formText`` in the catalog as the plugin's `FT_PLUGIN_CONFIG` restore object
/// `RestoreOptions`; the Director turns it into the Plugin Options dialogue, and at restore time sends what
/// the operator filled in (`FT_PLUGIN_CONFIG_FILLED`) to the plugin, which passes it on in a
/// `RestoreOptions` block. ``parse(_:)`` reads that text into plugin parameters, which override the
/// Plugin line's (the operator's choice at restore time wins).
///
/// The text format is Bacula's `ConfigFile` (src/lib/ini.c in 9.6.7): the form has `OptPrompt=`,
/// `OptDefault=` and `key=@TYPE@` entries; the filled text has `# comment` lines and `key=value`
/// entries, string values in double quotes with `\"`, `\\`, `\n` and `\r` escaped.
public enum RestoreOptionsForm {
    /// The restore object's name (Bacula's `INI_RESTORE_OBJECT_NAME`).
    public static let objectName = "RestoreOptions"

    /// One option of the form.
    public struct Item: Sendable, Hashable {
        /// The plugin parameter it sets (as on the Plugin line).
        public var key: String
        /// Whether it is a yes/no option (`@BOOL@`); otherwise a string (`@STR@`).
        public var isBoolean: Bool
        /// The prompt bconsole shows next to it.
        public var prompt: String
        /// The value used when it is left empty, shown by bconsole in parentheses.
        public var defaultValue: String?
    }

    /// The options, in the order bconsole numbers them (1 is `new_server`).
    public static let items: [Item] = [
        Item(key: "new_server", isBoolean: true, prompt: "Boot a new server (Where empty or /)", defaultValue: "no"),
        Item(key: "name", isBoolean: false, prompt: "New server's name", defaultValue: "original"),
        Item(key: "flavor", isBoolean: false, prompt: "New server's flavor, id or name", defaultValue: "original"),
        Item(key: "network", isBoolean: false, prompt: "New server's networks, comma-separated", defaultValue: "original"),
        Item(key: "key_name", isBoolean: false, prompt: "New server's key pair", defaultValue: "original"),
        Item(key: "project", isBoolean: false, prompt: "Project, id", defaultValue: "original"),
        Item(key: "availability_zone", isBoolean: false, prompt: "Availability zone", defaultValue: "original"),
        Item(key: "volume_type", isBoolean: false, prompt: "New volumes' type", defaultValue: "original"),
        Item(key: "name_prefix", isBoolean: false, prompt: "New volumes' name prefix", defaultValue: "restored-"),
        Item(key: "in_place", isBoolean: true, prompt: "Overwrite the original volumes", defaultValue: "no"),
        Item(key: "force", isBoolean: true, prompt: "Confirm in_place", defaultValue: "no"),
    ]

    /// The form stored with every Full backup. A fault of the 9.6.7 Director with a SQLite catalog (found
    /// with the real daemons) shapes it: it reads back an object whose stored length is one more than a
    /// multiple of 3 as empty (its base64 decoder wants one byte too many), so the form is padded with a
    /// blank line to avoid that length; and it stays under 1000 bytes, above which the FD stores it
    /// compressed, at a length nobody can steer (bconsole then says "Decompression failed").
    public static var formText: String {
        var text = "# Plugin configuration file\n# Version 1\n"
        for item in items {
            text += "OptPrompt=\(quoted(item.prompt))\n"
            if let value = item.defaultValue { text += "OptDefault=\(quoted(value))\n" }
            text += "\(item.key)=\(item.isBoolean ? "@BOOL@" : "@STR@")\n\n"
        }
        if text.utf8.count % 3 == 1 { text += "\n" }
        return text
    }

    /// The most a filled form may hold (the form has ten short entries).
    public static let maximumFilledSize = 64 * 1024

    /// The parameters of a filled form (`network` split at commas into one entry per network), in form
    /// order. An unknown key, a key given twice, a value that is not a boolean where one is due, or a line
    /// that is not `key=value` is an error naming the line.
    public static func parse(_ text: String) throws(BackupError) -> [(key: String, value: String)] {
        var entries: [(key: String, value: String)] = []
        var seen: Set<String> = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            func failure(_ what: String, hint: String? = nil) -> BackupError {
                BackupError(.configuration, resource: "bconsole Plugin Options", "line \(number + 1): \(what)", hint: hint)
            }
            guard let equals = line.firstIndex(of: "=") else { throw failure("'\(line.prefix(60))' is not key=value") }
            let key = line[..<equals].trimmingWhitespace()
            guard let item = items.first(where: { $0.key == key }) else {
                throw failure(
                    "unknown option '\(key.prefix(40))'",
                    hint: "the options are \(items.map(\.key).joined(separator: ", ")); use an osbackup and an openstack-fd.so of the same release")
            }
            guard seen.insert(key).inserted else { throw failure("'\(key)' is given twice") }
            // Spaces around a value are dropped, inside quotes too (see docs/bacula.md: adding one is the
            // way around the Director's SQLite fault for filled forms of an unlucky length).
            let value = try unquoted(line[line.index(after: equals)...].trimmingWhitespace(), failure: { failure($0) }).trimmingWhitespace()
            if item.isBoolean {
                guard ["yes", "no", "true", "false", "on", "off", "1", "0"].contains(value.lowercased()) else {
                    throw failure("\(key)=\(value.prefix(40)) is not yes or no")
                }
                entries.append((key, value.lowercased()))
            } else if key == "network" {
                let networks = value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
                entries += networks.map { (key, $0) }
            } else if !value.isEmpty {
                entries.append((key, value))
            }
        }
        return entries
    }

    /// A value as Bacula's `quote_string` writes it.
    static func quoted(_ value: String) -> String {
        var text = "\""
        for character in value {
            switch character {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            default: text.append(character)
            }
        }
        return text + "\""
    }

    /// A bare value as it is, a quoted one without its quotes and escapes.
    private static func unquoted(_ value: String, failure: (String) -> BackupError) throws(BackupError) -> String {
        guard value.hasPrefix("\"") else { return value }
        var result = ""
        var escaped = false
        var closed = false
        for character in value.dropFirst() {
            if closed { throw failure("text after the closing quote of \(value.prefix(60))") }
            if escaped {
                switch character {
                case "n": result += "\n"
                case "r": result += "\r"
                default: result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                closed = true
            } else {
                result.append(character)
            }
        }
        guard closed else { throw failure("a quoted value without its closing quote: \(value.prefix(60))") }
        return result
    }
}

extension PluginParameters {
    /// These parameters with the restore options `options` in place of the same keys' values.
    public func overriding(with options: [(key: String, value: String)]) throws(BackupError) -> PluginParameters {
        let replaced = Set(options.map(\.key))
        return try PluginParameters(entries.filter { !replaced.contains($0.key) } + options)
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" || first == "\r" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" { slice = slice.dropLast() }
        return String(slice)
    }
}
