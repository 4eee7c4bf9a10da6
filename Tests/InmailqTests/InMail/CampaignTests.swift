import Foundation
import InMail
import Postgres
import Testing

@Suite("Campaigns and contacts")
struct CampaignTests {
    func status(_ campaign: Int64, _ connection: Connection) throws -> String {
        try connection.query("select status from campaigns where id = \(campaign)").first!.decode(String.self, "status")
    }

    @Test func C1_aCampaignCreatedFromASeedCopiesItsSteps() throws {
        let connection = try TestDatabase().connect()
        let workspace = try AccountFixture(connection: connection).workspace()
        let seed = try Campaigns.create(workspace: workspace, name: "Seed", on: connection)
        try Campaigns.setStep(campaign: seed, position: 0, subject: "Hi {{first_name|there}}", body: "About {{company}}", delayDays: nil, on: connection)
        try Campaigns.setStep(campaign: seed, position: 1, subject: nil, body: "Following up", delayDays: 4, on: connection)
        let copy = try Campaigns.create(workspace: workspace, name: "Q1 outreach", seed: seed, on: connection)
        let steps = try connection.query("select position, subject, body, delay_days from campaign_steps where campaign_id = \(copy) order by position").rows
        #expect(steps.count == 2)
        #expect(try steps[0].decode(String?.self, "subject") == "Hi {{first_name|there}}")
        #expect(try steps[1].decode(Int?.self, "delay_days") == 4)
        // Copied at creation: later edits of the seed do not reach the copy.
        try Campaigns.setStep(campaign: seed, position: 1, subject: nil, body: "Changed", delayDays: 5, on: connection)
        #expect(try connection.query("select body from campaign_steps where campaign_id = \(copy) and position = 1").first!.decode(String.self, "body") == "Following up")
        let duplicate = #expect(throws: PostgresError.self) { try Campaigns.create(workspace: workspace, name: "Q1 outreach", on: connection) }
        #expect(duplicate?.message.contains("already has a campaign named \"Q1 outreach\"") == true)
    }

    @Test func C3_upToFiveFollowUpsEachThreeToThirtyDaysAfterThePrevious() throws {
        let connection = try TestDatabase().connect()
        let campaign = try Campaigns.create(workspace: try AccountFixture(connection: connection).workspace(), name: "C3", on: connection)
        for (position, days) in [(6, 5), (1, 2), (1, 31)] {
            #expect(throws: PostgresError.self, "step \(position) after \(days) days") {
                try Campaigns.setStep(campaign: campaign, position: position, subject: nil, body: "x", delayDays: days, on: connection)
            }
        }
        #expect(throws: PostgresError.self) {  // the InMail has a subject, a follow-up none
            try Campaigns.setStep(campaign: campaign, position: 0, subject: nil, body: "x", delayDays: nil, on: connection)
        }
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "s", body: "b", delayDays: nil, on: connection)
        try Campaigns.setStep(campaign: campaign, position: 2, subject: nil, body: "b", delayDays: 30, on: connection)
        let f = AccountFixture(connection: connection)
        let workspace = try connection.query("select workspace_id from campaigns where id = \(campaign)").first!.decode(Int64.self, "workspace_id")
        try Campaigns.addSender(campaign: campaign, account: try f.account(workspace: workspace), on: connection)
        let gap = #expect(throws: PostgresError.self) { try Campaigns.activate(campaign: campaign, on: connection) }
        #expect(gap?.message.contains("gap between its follow-up steps") == true)
        try Campaigns.setStep(campaign: campaign, position: 1, subject: nil, body: "b", delayDays: 3, on: connection)
        try Campaigns.activate(campaign: campaign, on: connection)
        #expect(try status(campaign, connection) == "active")
    }

    @Test func S5_activationRefusesAnUnknownFieldOrATextThatCannotFitNamingTheStep() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let workspace = try f.workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "S5", on: connection)
        try Campaigns.addSender(campaign: campaign, account: try f.account(workspace: workspace), on: connection)
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hello {{first_name|there}}", body: "Ask about {{favourite_tool}}", delayDays: nil, on: connection)
        #expect(throws: TemplateError.unknownField(part: "step 0 (InMail) body", field: "favourite_tool", known: Campaigns.standardFields.sorted())) {
            try Campaigns.activate(campaign: campaign, on: connection)
        }
        #expect(try status(campaign, connection) == "draft")
        // A custom field of the campaign's contacts is known.
        _ = try Contacts.add(campaign: campaign, links: [(1, "linkedin.com/in/lisa")], on: connection)
        try connection.execute("update contacts set custom_fields = '{\"favourite_tool\": \"Rust\"}' where campaign_id = \(campaign)")
        try Campaigns.setStep(campaign: campaign, position: 0, subject: String(repeating: "s", count: 201), body: "Ask about {{favourite_tool}}", delayDays: nil, on: connection)
        #expect(throws: TemplateError.tooLong(part: "step 0 (InMail) subject", length: 201, limit: 200)) {
            try Campaigns.activate(campaign: campaign, on: connection)
        }
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hello", body: "Ask about {{favourite_tool}}", delayDays: nil, on: connection)
        try Campaigns.activate(campaign: campaign, on: connection)
        #expect(try status(campaign, connection) == "active")
        // Once active, its texts cannot be changed past the check it passed.
        let edit = #expect(throws: PostgresError.self) {
            try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hi", body: "{{nickname}}", delayDays: nil, on: connection)
        }
        #expect(edit?.message.contains("pause it to change its steps") == true)
    }

    @Test func aCampaignNeedsAnInMailStepAndSendersOfItsOwnWorkspace() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let workspace = try f.workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "Pool", on: connection)
        let noStep = #expect(throws: PostgresError.self) { try Campaigns.activate(campaign: campaign, on: connection) }
        #expect(noStep?.message.contains("no InMail step") == true)
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "s", body: "b", delayDays: nil, on: connection)
        let noSender = #expect(throws: PostgresError.self) { try Campaigns.activate(campaign: campaign, on: connection) }
        #expect(noSender?.message.contains("no sender account") == true)
        let stranger = try f.account()  // another workspace
        let foreign = #expect(throws: PostgresError.self) { try Campaigns.addSender(campaign: campaign, account: stranger, on: connection) }
        #expect(foreign?.message.contains("is not in the workspace of campaign") == true)
        let unknownAccount = #expect(throws: PostgresError.self) { try Campaigns.addSender(campaign: campaign, account: 999_999, on: connection) }
        #expect(unknownAccount?.message == "no sender account with id 999999")
        let unknownCampaign = #expect(throws: PostgresError.self) { try Campaigns.addSender(campaign: 999_999, account: stranger, on: connection) }
        #expect(unknownCampaign?.message == "no campaign with id 999999")
    }

    @Test func C2_pastedLinksAddEachMemberOnceAndCountWhatWasNotAdded() throws {
        let connection = try TestDatabase().connect()
        let f = AccountFixture(connection: connection)
        let workspace = try f.workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "People", on: connection)
        let other = try Campaigns.create(workspace: workspace, name: "Other", on: connection)
        _ = try Contacts.add(campaign: other, links: [(1, "https://www.linkedin.com/in/busy-bee")], on: connection)
        try connection.execute("insert into do_not_contact (workspace_id, member_key) values (\(workspace), 'in:never')")
        let pasted = """
            https://www.linkedin.com/in/lisa, https://www.linkedin.com/in/john
            linkedin.com/in/Lisa/?trk=x
            https://www.linkedin.com/in/never
            https://example.com/in/leo
            https://www.linkedin.com/in/busy-bee
            https://www.linkedin.com/company/acme
            """
        let report = try Contacts.add(campaign: campaign, links: Contacts.links(inPastedText: pasted), on: connection)
        #expect(report.added == 2)
        #expect(report.duplicatesInInput == 1)
        #expect(report.doNotContact == 1)
        #expect(report.inAnotherCampaign == 1)
        #expect(report.rejected.map(\.line) == [4, 6])
        #expect(report.rejected[0].reason.contains("not a linkedin.com link"))
        let again = try Contacts.add(campaign: campaign, links: [(1, "https://uk.linkedin.com/in/john")], on: connection)
        #expect(again.added == 0 && again.alreadyInCampaign == 1)
        #expect(try connection.query("select count(*) as n from contacts where campaign_id = \(campaign)").first!.decode(Int.self, "n") == 2)
        // The database holds the line too: a member in progress in one campaign of a workspace.
        let twice = #expect(throws: PostgresError.self) {
            try connection.execute("insert into contacts (campaign_id, workspace_id, member_key, profile_url) select id, workspace_id, 'in:lisa', 'x' from campaigns where id = \(other)")
        }
        #expect(twice?.constraint == "contacts_member_in_progress_idx")
    }

    /// A contact stays in progress from 'waiting' through 'sent' and 'accepted', and the
    /// one-campaign-at-a-time index follows that, not the status itself: a delivery's rewrite of
    /// the contact ('waiting' to 'sent') changes no indexed value, so PostgreSQL makes it in place
    /// (a HOT update, no new entry in the contacts' indexes). Leaving progress frees the member.
    @Test func C2_aContactInProgressBlocksItsMemberElsewhere_andItsDeliveryRewriteTouchesNoIndex() throws {
        let connection = try TestDatabase().connect()
        let workspace = try AccountFixture(connection: connection).workspace()
        let first = try Campaigns.create(workspace: workspace, name: "First", on: connection)
        let second = try Campaigns.create(workspace: workspace, name: "Second", on: connection)
        func addAda(to campaign: Int64) throws -> ContactAddReport {
            try Contacts.add(campaign: campaign, links: [(1, "https://www.linkedin.com/in/ada")], on: connection)
        }
        _ = try addAda(to: first)
        let contact = try connection.queryOne("select id from contacts where campaign_id = \(first)").decode(Int64.self, "id")

        let inPlace = try connection.transaction { connection in
            try connection.execute("update contacts set status = 'sent', last_event_at = clock_now() where id = \(contact)")
            return try connection.queryOne("select pg_stat_get_xact_tuples_hot_updated('contacts'::regclass) as n").decode(Int.self, "n")
        }
        #expect(inPlace == 1)
        for status in ["sent", "accepted"] {
            try connection.execute("update contacts set status = \(status)::contact_status where id = \(contact)")
            let added = try addAda(to: second)
            #expect(added.added == 0 && added.inAnotherCampaign == 1, "a contact \(status) in the first campaign")
        }
        try connection.execute("update contacts set status = 'finished' where id = \(contact)")
        #expect(try addAda(to: second).added == 1)
    }

    /// A contact belongs to an existing campaign of its own workspace, whoever writes the row, and
    /// a campaign with contacts stays where it is: the database checks both sides, as the
    /// composite foreign key it replaces did (once per statement for inserts).
    @Test func C2_aContactsCampaignExistsInItsWorkspaceAndKeepsItsContacts() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let fixture = AccountFixture(connection: connection)
        let workspace = try fixture.workspace()
        let elsewhere = try fixture.workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "Kept", on: connection)
        func insert(campaign: Int64, workspace: Int64, member: String) throws {
            try connection.execute(
                "insert into contacts (campaign_id, workspace_id, member_key, profile_url) values (\(campaign), \(workspace), \(member), 'x')")
        }
        func contacts() throws -> Int {
            try connection.query("select count(*) as n from contacts").first!.decode(Int.self, "n")
        }
        // One good row and one of another workspace in a statement: the statement adds neither.
        let mixed = #expect(throws: PostgresError.self) {
            try connection.execute("""
                insert into contacts (campaign_id, workspace_id, member_key, profile_url)
                values (\(campaign), \(workspace), 'in:good', 'x'), (\(campaign), \(elsewhere), 'in:stray', 'x')
                """)
        }
        #expect(mixed?.sqlState == "23503")
        #expect(mixed?.message.contains("no campaign \(campaign) in workspace \(elsewhere)") == true)
        let unknown = #expect(throws: PostgresError.self) { try insert(campaign: campaign + 1000, workspace: workspace, member: "in:lost") }
        #expect(unknown?.sqlState == "23503")
        #expect(try contacts() == 0)

        try insert(campaign: campaign, workspace: workspace, member: "in:kept")
        #expect(try contacts() == 1)
        let moved = #expect(throws: PostgresError.self) { try connection.execute("update contacts set workspace_id = \(elsewhere)") }
        #expect(moved?.sqlState == "23503")
        let campaignMoved = #expect(throws: PostgresError.self) {
            try connection.execute("update campaigns set workspace_id = \(elsewhere) where id = \(campaign)")
        }
        #expect(campaignMoved?.message.contains("has contacts") == true)
        let deleted = #expect(throws: PostgresError.self) { try connection.execute("delete from campaigns where id = \(campaign)") }
        #expect(deleted?.message.contains("has contacts") == true)
        // Reading one snapshot, the check could miss a contact committed meanwhile: refused outright.
        let snapshot = #expect(throws: PostgresError.self) {
            try connection.execute("begin isolation level repeatable read")
            defer { _ = try? connection.execute("rollback") }
            try connection.execute("update campaigns set workspace_id = \(elsewhere) where id = \(campaign)")
        }
        #expect(snapshot?.sqlState == "25000")
        #expect(try connection.query("select workspace_id from campaigns where id = \(campaign)").first!.decode(Int64.self, "workspace_id")
            == workspace)
        #expect(try contacts() == 1)
    }

    /// The race the key share lock closes: a campaign's delete that comes while another
    /// transaction's new contacts of it are not committed waits for that transaction, then sees
    /// them and is refused.
    @Test func C2_aCampaignsDeleteWaitsForContactsBeingAddedAndIsRefused() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let workspace = try AccountFixture(connection: connection).workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "Raced", on: connection)
        let configuration = db.configuration
        let deleter = try connection.transaction { connection in
            try connection.execute(
                "insert into contacts (campaign_id, workspace_id, member_key, profile_url) values (\(campaign), \(workspace), 'in:raced', 'x')")
            return try RacingWork.waitingForALock(heldBy: connection, runningLike: "delete from campaigns%") {
                _ = try Connection(configuration).execute("delete from campaigns where id = \(campaign)")
            }
        }
        guard let error = deleter.refusal(within: .seconds(20), of: "the delete") else { return }
        #expect(error.message.contains("campaign \(campaign) has contacts"))
        #expect(try count("select count(*) from campaigns where id = \(campaign)", connection) == 1)
    }

    /// Two additions to one workspace at once: the second waits for the first, then counts the
    /// members the first added as in another campaign (without the workspace lock, its insert
    /// would fail on the in-progress index instead).
    @Test func C2_anImportRacingAnotherAdditionToTheWorkspaceCountsTheSharedMembersOnce() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let workspace = try AccountFixture(connection: connection).workspace()
        let first = try Campaigns.create(workspace: workspace, name: "First", on: connection)
        let second = try Campaigns.create(workspace: workspace, name: "Second", on: connection)
        let csv = "Profile URL,First Name\n" + (26...75).map { "https://www.linkedin.com/in/shared-\($0),M\($0)\n" }.joined()
        let configuration = db.configuration
        let racer = try connection.transaction { connection in
            let added = try Contacts.add(campaign: first, links: (1...50).map { ($0, "https://www.linkedin.com/in/shared-\($0)") }, on: connection)
            #expect(added.added == 50)
            // The import waits for this transaction's lock on the workspace.
            return try RacingWork.waitingForALock(heldBy: connection, runningLike: "%lock_campaign_workspace%") {
                try ContactImport(campaign: second).run(Data(csv.utf8), on: try Connection(configuration))
            }
        }
        let report = try racer.outcome(within: .seconds(20))?.get()
        #expect(report?.added == 25)
        #expect(report?.inAnotherCampaign == 25)
        #expect(try count("select count(*) from contacts where workspace_id = \(workspace)", connection) == 75)
    }

    @Test func contactsAddCommandReportsCountsAndRejectedLinesAndCampaignCommandsExplainRefusals() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let workspace = try AccountFixture(connection: connection).workspace()
        let campaign = try Campaigns.create(workspace: workspace, name: "CLI", on: connection)
        let added = try InmailqProcess.run(["contacts", "add", "--campaign", "\(campaign)", "--database-url", db.url,
                                            "https://www.linkedin.com/in/lisa,https://www.linkedin.com/in/lisa/", "not a link"])
        #expect(added.status == 2, "\(added.output)")  // one link rejected, the other stored
        #expect(added.output.contains("added 1"))
        #expect(added.output.contains("duplicates in the input 1"))
        #expect(added.output.contains("line 2: not a link"))
        let step = try InmailqProcess.run(["campaigns", "step", "--campaign", "\(campaign)", "--position", "1", "--body", "x", "--database-url", db.url])
        #expect(step.status != 0)
        #expect(step.output.contains("--delay-days between 3 and 30"))
        _ = try InmailqProcess.run(["campaigns", "step", "--campaign", "\(campaign)", "--position", "0", "--subject", "Hi", "--body", "{{nickname}}", "--database-url", db.url])
        let activate = try InmailqProcess.run(["campaigns", "activate", "\(campaign)", "--database-url", db.url])
        #expect(activate.status != 0)
        #expect(activate.output.contains("unknown field {{nickname}}"))
    }
}
