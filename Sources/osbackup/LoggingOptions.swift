import ArgumentParser
import Foundation
import Logging

/// The `--log-level` option every subcommand takes; logs go to standard error.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical (env OSBACKUP_LOG_LEVEL).")
    var logLevel: String?

    /// Bootstraps swift-log once and returns the command's logger.
    func makeLogger(label: String) throws -> Logger {
        let name = logLevel ?? ProcessInfo.processInfo.environment["OSBACKUP_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw ValidationError("unknown log level '\(name)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
