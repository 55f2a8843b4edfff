public import BackupEngine
public import BlockDelta

import Foundation

/// The `key=value` words of a FileSet's `Plugin = "openstack: …"` line, as the plugin forwards them: the
/// CLI's long options spelled with underscores (`proxy_server`, `unattached_volumes`), repeatable where
/// the CLI's are, booleans as yes/no/true/false/1/0.
public struct PluginParameters: Sendable {
    /// The keys the backend knows; any other is an error naming it.
    public static let known: Set<String> = [
        "cloud", "clouds_yaml", "config", "server", "exclude_server", "volume", "unattached_volumes", "all_projects", "parallel",
        "proxy_server", "device_directory", "device_timeout", "state", "bwlimit", "nice", "ionice", "timeout", "backend",
        "abort_on_error", "metrics_dir",
        // Restore options (bconsole's plugin options, or the FileSet line).
        "project", "new_server", "in_place", "force", "name", "name_prefix", "flavor", "network", "availability_zone", "volume_type", "key_name",
    ]
    /// The keys that may be given more than once.
    public static let repeatable: Set<String> = ["server", "exclude_server", "volume", "network"]

    /// The words, in order.
    public private(set) var entries: [(key: String, value: String)]

    /// Checks `entries`: known keys only, repeatable ones only repeated.
    public init(_ entries: [(key: String, value: String)]) throws(BackupError) {
        var seen: Set<String> = []
        for (key, _) in entries {
            guard Self.known.contains(key) else {
                throw BackupError(
                    .configuration, resource: "Plugin line", "unknown key '\(key)'",
                    hint: "the keys are \(Self.known.sorted().joined(separator: ", ")); see docs/bacula.md")
            }
            guard seen.insert(key).inserted || Self.repeatable.contains(key) else {
                throw BackupError(.configuration, resource: "Plugin line", "'\(key)' is given twice", hint: "give it once")
            }
        }
        self.entries = entries
    }

    /// The options of file `config=` for `command` (top level and its section) added for every key the
    /// line does not give: the line wins. The CLI's `os-cloud` is the plugin's `cloud`; the options only the
    /// CLI has (`to`, `level`, `json`, `from`…) are left out.
    public func merging(optionsFile path: String, command: String) throws(BackupError) -> PluginParameters {
        let renamed = ["os_cloud": "cloud"]
        let given = Set(entries.map(\.key))
        var merged = entries
        for (dashed, value) in try OptionsFile.load(path, command: command) {
            let underscored = dashed.replacingOccurrences(of: "-", with: "_")
            let key = renamed[underscored] ?? underscored
            guard Self.known.contains(key), key != "config", !given.contains(key) else { continue }
            switch value {
            case .flag(let on): if on { merged.append((key, "yes")) }
            case .values(let values): merged += values.map { (key, $0) }
            }
        }
        return try PluginParameters(merged)
    }

    /// The values of `key`, in order.
    public func values(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }

    /// The value of `key`, if given.
    public func value(_ key: String) -> String? { values(key).last }

    /// `key` as a boolean (default false).
    public func flag(_ key: String) throws(BackupError) -> Bool {
        guard let text = value(key) else { return false }
        switch text.lowercased() {
        case "yes", "true", "1", "on": return true
        case "no", "false", "0", "off": return false
        default:
            throw BackupError(.configuration, resource: "Plugin line", "\(key)=\(text) is not a boolean", hint: "use yes or no")
        }
    }

    /// `key` as a positive integer, or `defaultValue`.
    public func integer(_ key: String, default defaultValue: Int) throws(BackupError) -> Int {
        guard let text = value(key) else { return defaultValue }
        guard let number = Int(text), number >= 1 else {
            throw BackupError(.configuration, resource: "Plugin line", "\(key)=\(text) is not a positive whole number", hint: nil)
        }
        return number
    }

    /// The selection the keys describe.
    public func selection() throws(BackupError) -> TargetSelection {
        var servers: [ServerSelector] = []
        var excluded: [ServerSelector] = []
        for text in values("server") { servers.append(try ServerSelector.parse(text)) }
        for text in values("exclude_server") { excluded.append(try ServerSelector.parse(text)) }
        return TargetSelection(
            servers: servers, excludedServers: excluded, volumes: values("volume").map { $0.lowercased() },
            unattachedVolumes: try flag("unattached_volumes"), allProjects: try flag("all_projects"))
    }
}

/// The job facts the plugin sends after the handshake.
public struct BaculaJobInfo: Sendable, Hashable {
    /// Bacula's JobId.
    public var jobID: Int
    /// The job's name.
    public var jobName: String
    /// `F`, `I` or `D`.
    public var level: Character
    /// The since time (epoch seconds; informational: the hash maps decide what changed).
    public var since: Int
    /// Whether the Job runs with `Accurate = yes`.
    public var accurate: Bool
    /// The restore's `where` (empty or `/`: into the cloud).
    public var `where`: String
    /// The restore's `regexwhere`.
    public var regexWhere: String
    /// The restore's replace policy.
    public var replace: String
    /// The FD's working directory.
    public var workingDirectory: String

    /// The Job resource's name: the job name without the run's `.YYYY-MM-DD_HH.MM.SS_NN` suffix.
    public var jobResourceName: String {
        guard let range = jobName.range(of: #"\.\d{4}-\d{2}-\d{2}_\d{2}\.\d{2}\.\d{2}_\d+$"#, options: .regularExpression) else {
            return jobName
        }
        return String(jobName[..<range.lowerBound])
    }

    /// The backup level Bacula asks for.
    public var backupLevel: BackupLevel {
        switch level {
        case "I": .incremental
        case "D": .differential
        default: .full
        }
    }

    /// Parses the `key=value` lines of the `Job` block.
    public init(_ lines: [String]) throws(BackupError) {
        var values: [String: String] = [:]
        for line in lines {
            guard let equals = line.firstIndex(of: "=") else {
                throw BackupError(.failed, resource: "plugin protocol", "a Job line is not key=value: '\(line)'")
            }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        guard let jobID = values["JobId"].flatMap(Int.init), let level = values["Level"]?.first, "FID".contains(level) else {
            throw BackupError(.failed, resource: "plugin protocol", "the Job block lacks a JobId or a Level F, I or D: \(values.keys.sorted())")
        }
        self.jobID = jobID
        jobName = values["JobName"] ?? ""
        self.level = level
        since = values["Since"].flatMap(Int.init) ?? 0
        accurate = values["Accurate"] == "1"
        self.where = values["Where"] ?? ""
        regexWhere = values["RegexWhere"] ?? ""
        replace = values["Replace"] ?? ""
        workingDirectory = values["WorkingDir"] ?? "/var/lib/bacula"
    }
}
