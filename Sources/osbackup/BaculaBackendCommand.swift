import ArgumentParser
import BaculaBridge
import Foundation

/// `osbackup bacula-backend`: started by the Bacula plugin `openstack-fd.so` for each job; speaks the
/// protocol of docs/bacula-protocol.md on standard input and output. Not for interactive use.
struct BaculaBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bacula-backend",
        abstract: "The backend of the Bacula plugin (started by openstack-fd.so; speaks docs/bacula-protocol.md on stdin/stdout).",
        shouldDisplay: false)

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        guard isatty(STDOUT_FILENO) == 0 else {
            throw ValidationError("bacula-backend speaks a binary protocol to the Bacula plugin on standard output; it is not for a terminal")
        }
        // A closed pipe (the FD ended the job) must be an error to handle, not a silent death.
        signal(SIGPIPE, SIG_IGN)
        let logger = try logging.makeLogger(label: "osbackup.bacula")
        let backend = BaculaBackend(
            input: STDIN_FILENO, output: STDOUT_FILENO, environment: ProcessInfo.processInfo.environment, logger: logger)
        // SIGTERM (the plugin's cancel) cancels the job, which removes its temporary resources.
        let status = try await cancellableOnSignals { await backend.run() }
        if status != 0 { throw ExitCode(status) }
    }
}
