import Foundation
import InMail
import Postgres
import Queue
import Testing

/// The roles of sql/access: what the worker's role may not do, what a reader sees, and the whole
/// system working under its roles (operators' CLI commands, workers, readers).
@Suite("Roles and row-level security")
struct AccessTests {
    /// `statement` fails for want of privilege (42501), not for any other reason.
    func expectRefused(_ statement: SQL, on connection: Connection, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try connection.execute(statement)
            Issue.record("\(connection.configuration.conninfo.split(separator: " ").last ?? "") could: \(statement)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.sqlState == "42501", "\(statement): \(error)", sourceLocation: sourceLocation)  // insufficient_privilege
        }
    }

    @Test func theWorkerRoleCannotChangeTheSchemaTruncateOrCallOperatorFunctions() throws {
        let db = try TestDatabase()
        let account = try AccountFixture(connection: try db.connect()).account()
        let worker = try TestRoles.connect(db, as: try TestRoles.login(.worker))
        for statement: SQL in [
            "drop table jobs", "alter table contacts add column nickname text", "truncate jobs", "truncate credit_ledger",
            "create table scratch (x int)", "create or replace function queue_notify(p_reason text) returns void language sql as $$ select $$",
            "select purchase_credits(\(account), 5)", "select clock_advance(interval '1 day')",
            "insert into agencies (name) values ('Intruder')", "update plans set monthly_allotment = 1000",
            "select count(*) from agency_readers",
        ] {
            expectRefused(statement, on: worker)
        }
        // What workers do, they may.
        #expect(try count("select count(*) from jobs", worker) == 0)
        #expect(try worker.queryOne("select credit_balance(\(account)) as n").decode(Int.self, "n") == 0)
        #expect(try count("select count(*) from sender_accounts", worker) == 1)
    }

    /// The admin scripts no other test runs, as the operators' role: each does its work.
    @Test func theRemainingAdminScriptsWorkUnderTheOperatorsRole() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let account = try AccountFixture(connection: connection).account(plan: "premium_career")
        let scripts = AdminScriptTests()
        func run(_ script: String, _ variables: [String: String]) throws {
            let result = try scripts.psql(db, script, variables)
            #expect(result.status == 0, "\(script): \(result.output)")
        }
        func status() throws -> String {
            try connection.queryOne("select status::text as s from sender_accounts where id = \(account)").decode(String.self, "s")
        }
        try run("pause_account", ["account": "\(account)"])
        try run("resume_account", ["account": "\(account)"])
        #expect(try status() == "active")
        try run("card_expired", ["account": "\(account)"])
        try run("card_updated", ["account": "\(account)"])
        #expect(try status() == "active")
        try run("change_plan", ["account": "\(account)", "plan": "sales_navigator"])
        #expect(try connection.queryOne("select plan_code from sender_accounts where id = \(account)").decode(String.self, "plan_code") == "sales_navigator")
        try run("connect_gateway_account", ["account": "\(account)", "gateway_account": "gw-ops-1"])
        #expect(try count("select count(*) from sender_accounts where gateway_account_id = 'gw-ops-1'", connection) == 1)
        try run("set_reply_phrase", ["phrase": "Ja, gerne", "kind": "interested"])
        #expect(try count("select count(*) from reply_phrases where phrase ilike 'ja, gerne%'", connection) == 1)
        try run("inbox", [:])
        try run("cancel_subscription", ["account": "\(account)"])
        #expect(try status() == "cancelled")
    }

    /// Two agencies send for real (an operator's CLI commands, a worker process under the
    /// worker's role); each agency's reader sees exactly its own rows, a reader of no agency
    /// sees none, and no reader reads the queue or writes anything.
    @Test(.timeLimit(.minutes(3)))
    func eachAgencyReaderSeesExactlyItsOwnRowsAfterRealWorkUnderTheRoles() throws {
        let db = try TestDatabase()
        let admin = try db.connect()
        let accounts = AccountFixture(connection: admin)
        let operatorURL = TestRoles.url(db, as: try TestRoles.login(.operator))
        func cli(_ arguments: [String]) throws -> String {
            let run = try InmailqProcess.run(arguments + ["--database-url", operatorURL, "--log-level", "warning"])
            #expect(run.status == 0, "\(arguments): \(run.output)")
            return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var agencies: [Int64] = []
        var campaigns: [Int64] = []
        for (index, people) in [3, 5].enumerated() {
            let workspace = try accounts.workspace("Client \(index)")
            agencies.append(try admin.queryOne("select agency_id from workspaces where id = \(workspace)").decode(Int64.self, "agency_id"))
            let sender = try accounts.account(plan: "sales_navigator", workspace: workspace)
            try accounts.renewCurrentCycle(sender)
            let campaign = try #require(Int64(try cli(["campaigns", "create", "--workspace", "\(workspace)", "--name", "Hello"])))
            _ = try cli(["campaigns", "step", "--campaign", "\(campaign)", "--position", "0", "--subject", "Hi", "--body", "A question"])
            _ = try cli(["campaigns", "add-sender", "--campaign", "\(campaign)", "\(sender)"])
            _ = try cli(["contacts", "add", "--campaign", "\(campaign)"] + (0..<people).map { "https://www.linkedin.com/in/a\(index)-\($0)" })
            _ = try cli(["campaigns", "activate", "\(campaign)"])
            campaigns.append(campaign)
        }
        let worker = try InmailqProcess.start(
            ["worker", "--database-url", TestRoles.url(db, as: try TestRoles.login(.worker)), "--log-level", "warning"])
        defer { worker.stop() }
        #expect(try waitUntilQuiet(admin, workers: [worker]))
        // Every send ran to its end under the worker's role (the sandbox's members answer or not).
        #expect(try count("select count(*) from all_jobs where kind = 'inmail.send' and state <> 'completed'", admin) == 0)
        #expect(try count("select count(*) from all_jobs where kind = 'inmail.send'", admin) == 8)
        #expect(try count("select count(*) from messages where state = 'sent'", admin) > 0, "\(worker.output.suffix(2000))")
        #expect(try cli(["report", "--campaign", "\(campaigns[1])"]).contains("Hello"))
        #expect(try cli(["jobs", "list"]).isEmpty == false)

        // Each table as the agency's reader sees it, against what belongs to that agency.
        let owned: [(table: String, filter: String)] = [
            ("agencies", "id = $1"),
            ("workspaces", "agency_id = $1"),
            ("sender_accounts", "workspace_id in (select id from workspaces where agency_id = $1)"),
            ("credit_grants", "account_id in (select a.id from sender_accounts a join workspaces w on w.id = a.workspace_id where w.agency_id = $1)"),
            ("credit_ledger", "account_id in (select a.id from sender_accounts a join workspaces w on w.id = a.workspace_id where w.agency_id = $1)"),
            ("reservations", "account_id in (select a.id from sender_accounts a join workspaces w on w.id = a.workspace_id where w.agency_id = $1)"),
            ("daily_usage", "account_id in (select a.id from sender_accounts a join workspaces w on w.id = a.workspace_id where w.agency_id = $1)"),
            ("campaigns", "workspace_id in (select id from workspaces where agency_id = $1)"),
            ("campaign_steps", "campaign_id in (select c.id from campaigns c join workspaces w on w.id = c.workspace_id where w.agency_id = $1)"),
            ("contacts", "workspace_id in (select id from workspaces where agency_id = $1)"),
            ("messages", "campaign_id in (select c.id from campaigns c join workspaces w on w.id = c.workspace_id where w.agency_id = $1)"),
            ("campaign_report", "campaign_id in (select c.id from campaigns c join workspaces w on w.id = c.workspace_id where w.agency_id = $1)"),
        ]
        var readers: [String] = []
        for (index, agency) in agencies.enumerated() {
            let login = try TestRoles.newLogin("reader")
            readers.append(login)
            let granted = try AdminScriptTests().psql(db, "grant_agency_reader", ["login": login, "agency": "\(agency)"])
            #expect(granted.status == 0 && granted.output.contains(login), "\(granted.output)")
            let reader = try TestRoles.connect(db, as: login)
            for (table, filter) in owned {
                let expected = try count(SQL(unsafeText: "select count(*) from \(table) where \(filter.replacingOccurrences(of: "$1", with: String(agency)))"), admin)
                #expect(expected > 0, "\(table) has rows of agency \(index)")
                #expect(try count(SQL(unsafeText: "select count(*) from \(table)"), reader) == expected, "\(table) as agency \(index)'s reader")
            }
            // Naming another agency's row changes nothing: it is not there.
            let other = campaigns[1 - index]
            #expect(try count("select count(*) from contacts where campaign_id = \(other)", reader) == 0)
            #expect(try count("select count(*) from messages where campaign_id = \(other)", reader) == 0)
            #expect(try count("select count(*) from unnest(reader_campaigns(\(login)))", reader) == 1)
            // Not the queue, not the inbox, and nothing written.
            for statement: SQL in [
                "select count(*) from jobs", "select count(*) from gateway_inbox", "select count(*) from agency_readers",
                "update contacts set first_name = 'X'", "insert into agencies (name) values ('Mine')",
                "select grant_agency_reader(\(login), \(agencies[1 - index]))",
            ] {
                expectRefused(statement, on: reader)
            }
        }
        // A reader login of no agency sees nothing, even of another agency's ids.
        let stranger = try TestRoles.newLogin("stranger")
        try admin.execute("grant inmailq_reader to \(SQL(unsafeText: quoteIdentifier(stranger)))")
        let nobody = try TestRoles.connect(db, as: stranger)
        for (table, _) in owned {
            #expect(try count(SQL(unsafeText: "select count(*) from \(table)"), nobody) == 0, "\(table)")
        }
        // The mapping cannot be forged by naming another reader: the functions answer only for
        // roles the session's login belongs to.
        #expect(try count("select count(*) from unnest(reader_campaigns(\(readers[0])))", nobody) == 0)
    }
}
