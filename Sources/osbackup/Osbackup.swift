import ArgumentParser
import BackupEngine
import BlockDelta
import Foundation
import OpenStackClient

/// The `osbackup` command: it only lists subcommands; each subcommand parses its options and calls the
/// library.
///
/// Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 3 partial (some targets failed).
@main
struct Osbackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "osbackup",
        abstract: "Block-level backup of OpenStack servers and volumes, for Bacula or standalone.",
        version: "0.1.0",
        subcommands: [
            BackupCommand.self, RestoreCommand.self, CleanupCommand.self, ListCommand.self, VerifyCommand.self, PruneCommand.self, EstimateCommand.self, BaculaBackendCommand.self,
            ImageCommand.self, DoctorCommand.self,
            EmulatorCommand.self,
        ]
    )

    static func main() async {
        do {
            var command = try parseAsRoot(ConfigFile.expand(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as BlockDeltaError {
            printError("osbackup: \(error)")
            Foundation.exit(error.isConfigurationError ? ExitStatus.usage : ExitStatus.failure)
        } catch let error as ConfigFileError {
            printError("osbackup: \(error)")
            Foundation.exit(ExitStatus.usage)
        } catch let error as ConfigurationError {
            printError("osbackup: configuration: \(error)")
            Foundation.exit(ExitStatus.usage)
        } catch let error as BackupError {
            printError("osbackup: \(error)")
            Foundation.exit(error.kind == .configuration ? ExitStatus.usage : ExitStatus.failure)
        } catch let error as OpenStackError {
            printError("osbackup: \(error)")
            Foundation.exit(ExitStatus.failure)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            printError(fullMessage(for: error))
            // ArgumentParser reports usage errors as EX_USAGE (64); osbackup promises 2.
            Foundation.exit(code == .validationFailure ? ExitStatus.usage : code.rawValue)
        }
    }
}

/// The process exit statuses osbackup documents.
enum ExitStatus {
    /// Everything asked for was done.
    static let success: Int32 = 0
    /// The operation failed.
    static let failure: Int32 = 1
    /// The command line or the configuration is wrong.
    static let usage: Int32 = 2
    /// Some targets were backed up, others failed.
    static let partial: Int32 = 3
}

/// Prints `value` as pretty JSON with sorted keys on standard output (the `--json` of every command).
func printJSON(_ value: some Encodable) throws {
    print(try jsonText(value))
}

/// `value` as pretty JSON with sorted keys (what ``printJSON(_:)`` prints).
func jsonText(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
