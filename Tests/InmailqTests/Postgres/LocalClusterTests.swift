import EmbeddedPostgres
import Foundation
import Postgres
import Testing

@Suite("Local cluster")
struct LocalClusterTests {
    @Test func dbCommandsCreateStartReportAndStopAPrivateCluster() throws {
        let home = NSTemporaryDirectory() + "inmailq-db-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let environment = ["INMAILQ_HOME": home, "DATABASE_URL": ""]
        defer {
            _ = try? InmailqProcess.run(["db", "stop"], environment: environment)
            try? FileManager.default.removeItem(atPath: home)
        }
        let stopped = try InmailqProcess.run(["db", "status"], environment: environment)
        #expect(stopped.status == 3)
        #expect(stopped.output.contains("not created"))

        let started = try InmailqProcess.run(["db", "start"], environment: environment)
        #expect(started.status == 0, "\(started.output)")
        let again = try InmailqProcess.run(["db", "start"], environment: environment)
        #expect(again.status == 0, "starting a running cluster is not an error: \(again.output)")

        let url = try InmailqProcess.run(["db", "url"], environment: environment)
        #expect(url.status == 0)
        let connection = try Connection(ConnectionConfiguration(url.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try connection.query("select current_database() as db").first?.decode(String.self, "db") == "inmailq")
        // Only loopback and the private socket.
        #expect(try connection.query("show listen_addresses").first?.decode(String.self, at: 0) == "127.0.0.1")

        let status = try InmailqProcess.run(["db", "status"], environment: environment)
        #expect(status.status == 0)
        #expect(status.output.contains("running"))

        #expect(try InmailqProcess.run(["db", "stop"], environment: environment).status == 0)
        #expect(try InmailqProcess.run(["db", "status"], environment: environment).status == 3)
    }
}
