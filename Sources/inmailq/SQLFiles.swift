import ArgumentParser
import Foundation
import InMail
import Postgres

/// Finds the `sql/` directory shipped with inmailq: `INMAILQ_SQL_DIR`, else `sql/` beside the
/// executable or in one of its parent directories (a source checkout), else `./sql`,
/// else `/usr/share/inmailq/sql`.
enum SQLFiles {
    static func directory() throws -> String {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["INMAILQ_SQL_DIR"], !configured.isEmpty {
            candidates.append(configured)
        }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory.appendingPathComponent("sql").path)
            directory.deleteLastPathComponent()
        }
        candidates.append(fileManager.currentDirectoryPath + "/sql")
        candidates.append("/usr/share/inmailq/sql")
        for candidate in candidates where fileManager.fileExists(atPath: candidate + "/" + InMailSchema.owners[0]) {
            return candidate
        }
        throw CommandFailure("cannot find the sql/ directory (with queue/, accounts/, outreach/); set INMAILQ_SQL_DIR to it")
    }

    /// The migrator for the SQL shipped with inmailq; with `sandbox`, the sandbox courier's tables too.
    static func shippedMigrator(sandbox: Bool) throws -> Migrator {
        try InMailSchema.migrator(sqlDirectory: try directory(), sandbox: sandbox)
    }
}
