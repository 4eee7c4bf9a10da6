import ArgumentParser
import Foundation
import Postgres

/// Finds the `sql/` directory shipped with inmailq: `INMAILQ_SQL_DIR`, else `sql/` beside the
/// executable or in one of its parent directories (a source checkout), else `./sql`,
/// else `/usr/share/inmailq/sql`.
enum SQLFiles {
    static func directory(_ subdirectory: String) throws -> String {
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
        for candidate in candidates where fileManager.fileExists(atPath: candidate + "/" + subdirectory) {
            return candidate + "/" + subdirectory
        }
        throw CommandFailure("cannot find sql/\(subdirectory); set INMAILQ_SQL_DIR to the directory holding it")
    }

    /// The migrator for the migrations shipped with inmailq.
    static func shippedMigrator() throws -> Migrator {
        Migrator(migrations: try Migration.load(from: try directory("migrations")))
    }
}
