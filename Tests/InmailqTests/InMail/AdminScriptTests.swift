import Foundation
import Postgres
import Testing

/// The operators' scripts in sql/admin, run through psql as the header of each says.
@Suite("Admin scripts")
struct AdminScriptTests {
    func psql(_ db: TestDatabase, _ script: String, _ variables: [String: String]) throws -> (status: Int32, output: String) {
        let psql = ["/usr/bin/psql", "/usr/local/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/psql"
        var arguments = [psql, db.url, "-X"]
        for (name, value) in variables.sorted(by: { $0.key < $1.key }) { arguments += ["-v", "\(name)=\(value)"] }
        arguments += ["-f", TestPaths.root + "/sql/admin/\(script).sql"]
        let outputPath = NSTemporaryDirectory() + "inmailq-psql-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let status = try ChildProcess.spawn(arguments, outputPath: outputPath).wait()
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    @Test func scriptsCreateTenancyAndRefuseBadInputWithoutChangingAnything() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        #expect(try psql(db, "create_agency", ["name": "Acme"]).status == 0)
        #expect(try psql(db, "create_workspace", ["agency": "1", "name": "Client X"]).status == 0)
        let created = try psql(db, "create_sender_account", ["workspace": "1", "name": "Jane", "plan": "sales_navigator", "anchor": "2026-11-14", "tz": "Europe/Paris"])
        #expect(created.status == 0, "\(created.output)")
        let account = try connection.query("select max(id) as id from sender_accounts").first!.decode(Int64.self, "id")

        let badZone = try psql(db, "create_sender_account", ["workspace": "1", "name": "Jim", "plan": "premium_career", "anchor": "2026-11-14", "tz": "Mars/Olympus"])
        #expect(badZone.status != 0)
        #expect(badZone.output.contains("unknown time zone \"Mars/Olympus\""))
        let badWorkspace = try psql(db, "create_workspace", ["agency": "999", "name": "Nobody"])
        #expect(badWorkspace.output.contains("no agency with id 999"))

        let forbidden = try psql(db, "purchase_credits", ["account": "\(account)", "credits": "5"])
        #expect(forbidden.status != 0)
        #expect(forbidden.output.contains("cannot purchase InMail credits (A8)"))
        let unknown = try psql(db, "card_expired", ["account": "424242"])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("no sender account with id 424242"))
        let missing = try psql(db, "pause_account", [:])
        #expect(missing.status != 0)
        #expect(missing.output.contains("missing -v account="))

        #expect(try connection.query("select count(*) as n from sender_accounts").first!.decode(Int.self, "n") == 1)
        #expect(try connection.query("select count(*) as n from credit_ledger").first!.decode(Int.self, "n") == 0)
        #expect(try connection.query("select status from sender_accounts").first!.decode(String.self, "status") == "active")

        #expect(try psql(db, "card_expired", ["account": "\(account)"]).status == 0)
        #expect(try connection.query("select status from sender_accounts").first!.decode(String.self, "status") == "payment_failed")
        let statement = try psql(db, "account_statement", ["account": "\(account)"])
        #expect(statement.status == 0)
        #expect(statement.output.contains("payment_failed"))
    }
}
