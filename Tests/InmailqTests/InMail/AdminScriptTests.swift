import EmbeddedPostgres
import Foundation
import InMail
import Postgres
import Testing

/// The operators' scripts in sql/admin, run through psql as the header of each says.
@Suite("Admin scripts")
struct AdminScriptTests {
    /// Runs an admin script as the operators' role (sql/access), as production runs it.
    func psql(_ db: TestDatabase, _ script: String, _ variables: [String: String]) throws -> (status: Int32, output: String) {
        let psql = ["/usr/bin/psql", "/usr/local/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/psql"
        var arguments = [psql, TestRoles.url(db, as: try TestRoles.login(.operator)), "-X"]
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

/// The outreach scripts: responses, the report and the People view, through psql.
@Suite("Admin scripts for outreach")
struct OutreachAdminScriptTests {
    @Test func C4_recordResponseReportAndPeopleScriptsShowTheSameNumbersAsTheViews() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3])
        let ids = try f.contacts(campaign, ["ada", "bo", "cy"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let scripts = AdminScriptTests()
        let message = try f.message(ids[0])!.decode(Int64.self, "id")
        let recorded = try scripts.psql(f.db, "record_response", ["message": "\(message)", "kind": "accepted_edited", "text": "Yes, call me"])
        #expect(recorded.status == 0, "\(recorded.output)")
        #expect(recorded.output.contains("replied"))
        let unknownKind = try scripts.psql(f.db, "record_response", ["message": "\(message)", "kind": "thumbs_up"])
        #expect(unknownKind.status != 0 && unknownKind.output.contains("unknown response kind \"thumbs_up\""))
        #expect(try f.count("select count(*) from responses") == 1)

        let report = try scripts.psql(f.db, "report", ["campaign": "\(campaign)"])
        #expect(report.status == 0, "\(report.output)")
        let row = try f.connection.query("select inmails_sent, responders from campaign_report where campaign_id = \(campaign)").first!
        #expect(try row.decode(Int.self, "inmails_sent") == 3 && row.decode(Int.self, "responders") == 1)
        #expect(report.output.range(of: #"inmails_sent\s+\| 3\n"#, options: .regularExpression) != nil)
        #expect(report.output.range(of: #"responders\s+\| 1\n"#, options: .regularExpression) != nil)

        let people = try scripts.psql(f.db, "people", ["campaign": "\(campaign)", "status": "sent"])
        #expect(people.status == 0)
        #expect(people.output.contains("in:bo") && people.output.contains("in:cy") && !people.output.contains("in:ada"))
        #expect(people.output.contains("awaiting a response"))
        let noCampaign = try scripts.psql(f.db, "people", ["campaign": "424242"])
        #expect(noCampaign.status != 0 && noCampaign.output.contains("no campaign with id 424242"))
        let noReport = try scripts.psql(f.db, "report", ["campaign": "424242"])
        #expect(noReport.status != 0 && noReport.output.contains("no campaign with id 424242"), "\(noReport.output)")
    }
}

@Suite("Senders and sends an operator settles")
struct StuckSendTests {
    /// A contact's sender is an account of its campaign's pool, so an account that exists: no
    /// foreign key says so (outreach 0014), the pool's check and accounts that are never deleted do.
    @Test func aContactsSenderIsAlwaysAnExistingAccountOfItsCampaignsPoolAndAnAssignedSenderStaysInIt() throws {
        let f = try OutreachFixture()
        let (inPool, outside) = (try f.sender(), try f.sender())
        let campaign = try f.campaign(senders: [inPool], followUpDelays: [])
        let id = try f.contacts(campaign, ["pooled"])[0]
        let refused = #expect(throws: PostgresError.self) {
            try f.connection.execute("update contacts set sender_account_id = \(outside) where id = \(id)")
        }
        #expect(refused?.message == "sender account \(outside) is not in the pool of campaign \(campaign) (add it with campaigns add-sender first)")
        let noSuchAccount: Int64 = 987_654_321
        let unknown = #expect(throws: PostgresError.self) {
            try f.connection.execute("update contacts set sender_account_id = \(noSuchAccount) where id = \(id)")
        }
        #expect(unknown?.message.hasPrefix("sender account \(noSuchAccount) is not in the pool") == true)
        let inserted = #expect(throws: PostgresError.self) {
            try f.connection.execute(
                """
                insert into contacts (campaign_id, workspace_id, member_key, profile_url, sender_account_id)
                select id, workspace_id, 'in:stray', 'https://www.linkedin.com/in/stray', \(noSuchAccount) from campaigns where id = \(campaign)
                """)
        }
        #expect(inserted?.message.hasPrefix("sender account \(noSuchAccount) is not in the pool") == true)
        try f.connection.execute("update contacts set sender_account_id = \(inPool) where id = \(id)")
        let kept = #expect(throws: PostgresError.self) {
            try f.connection.execute("delete from campaign_senders where campaign_id = \(campaign) and account_id = \(inPool)")
        }
        #expect(kept?.message.contains("has contacts in campaign") == true)
        let stays = #expect(throws: PostgresError.self) {
            try f.connection.execute("delete from sender_accounts where id = \(inPool)")
        }
        #expect(stays?.message.hasPrefix("sender_accounts rows are never deleted") == true)
        #expect(try f.count("select count(*) from contacts c join sender_accounts a on a.id = c.sender_account_id where c.id = \(id)") == 1)
    }

    @Test func aStuckSendIsListedAndSettledEitherWayByTheAdminScript() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        let (wentOut, didNot) = try f.contacts(campaign, ["went-out", "did-not"], set: SQL(unsafeText: "sender_account_id = \(sender)")).pair
        // Both were being sent when their jobs ended: messages 'sending', reservations held, no job.
        for contact in [wentOut, didNot] {
            let key = "contact:\(contact):step:0"
            let reservation = try f.accounts.reserve(sender, key: key).get()
            try f.connection.execute(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body, reservation_id)
                select \(contact), \(campaign), \(sender), member_key, 0, 'inmail', true, \(key), 'Hi', \(reservation) from contacts where id = \(contact)
                """)
        }
        try f.connection.execute("delete from jobs where unique_key like 'contact:%'")  // their jobs ended
        #expect(try f.count("select count(*) from stuck_sends") == 2)
        #expect(try f.contact(wentOut).reason?.hasPrefix("delivery unconfirmed") == true)
        let balance = try f.accounts.balance(sender)
        let scripts = AdminScriptTests()
        let yes = try scripts.psql(f.db, "resolve_stuck_send", ["key": "contact:\(wentOut):step:0", "went_out": "yes", "receipt": "msg-123"])
        #expect(yes.status == 0 && yes.output.contains("recorded as delivered"), "\(yes.output)")
        #expect(try f.contact(wentOut).status == "sent")
        #expect(try f.count("select count(*) from messages where receipt = 'msg-123' and state = 'sent'") == 1)
        let no = try scripts.psql(f.db, "resolve_stuck_send", ["key": "contact:\(didNot):step:0", "went_out": "no"])
        #expect(no.status == 0 && no.output.contains("released and queued again"), "\(no.output)")
        #expect(try f.accounts.balance(sender) == balance + 1)  // its credit came back
        #expect(try f.count("select count(*) from stuck_sends") == 0)
        #expect(try f.count("select count(*) from jobs where unique_key = \("contact:\(didNot):step:0")") == 1)
        let again = try scripts.psql(f.db, "resolve_stuck_send", ["key": "contact:\(didNot):step:0", "went_out": "no"])
        #expect(again.status != 0 && again.output.contains("no stuck send with key"))
        try f.drain()
        #expect(try f.contact(didNot).status == "sent")
    }
}

@Suite("Sending schedule")
struct SendingScheduleTests {
    @Test func S6_anOperatorSetsHoursSpacingAndLimitsAndABadValueChangesNothing() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let account = try AccountFixture(connection: connection).account(dailyLimit: 10)
        let scripts = AdminScriptTests()
        let set = try scripts.psql(db, "set_sending_schedule", [
            "account": "\(account)", "days": "{1,2,3}", "start": "08:30", "end": "17:00", "inmails": "7", "min_spacing": "1 minute",
            "max_spacing": "5 minutes",
        ])
        #expect(set.status == 0, "\(set.output)")
        let row = try connection.queryOne(
            """
            select working_days::text as days, working_start::text as start, working_end::text as stop, daily_inmail_limit,
                   min_spacing = interval '1 minute' as spaced
            from sender_accounts where id = \(account)
            """)
        #expect(try row.decode(String.self, "days") == "{1,2,3}" && row.decode(String.self, "start") == "08:30:00")
        #expect(try row.decode(String.self, "stop") == "17:00:00" && row.decode(Int.self, "daily_inmail_limit") == 7)
        #expect(try row.decode(Bool.self, "spaced"))
        for (variables, reason) in [
            (["days": "{8}"], "working days {8} must be ISO day numbers"),
            (["start": "18:00"], "working hours must start before they end"),
            (["inmails": "5000"], "daily limits must be between 0 and 1000"),
            (["max_spacing": "30 seconds"], "its minimum not above its maximum"),
        ] {
            let bad = try scripts.psql(db, "set_sending_schedule", variables.merging(["account": "\(account)"]) { $1 })
            #expect(bad.status != 0 && bad.output.contains(reason), "\(variables): \(bad.output)")
        }
        #expect(try connection.queryOne("select daily_inmail_limit from sender_accounts where id = \(account)").decode(Int.self, "daily_inmail_limit") == 7)
    }
}
