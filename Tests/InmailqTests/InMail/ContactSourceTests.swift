import Foundation
import InMail
import Postgres
import Queue
import Testing

/// C2: contacts from pasted profile links, CSV files and search URLs, and the People view.
/// The fixtures are in Tests/InmailqTests/Fixtures; every count in a report is asserted exactly.
@Suite("Adding contacts three ways")
struct ContactSourceTests {
    static let fixtures = TestPaths.root + "/Tests/InmailqTests/Fixtures"

    func draftCampaign(_ f: OutreachFixture) throws -> Int64 {
        try f.campaign(senders: [try f.sender()], followUpDelays: [])
    }

    @Test func C2_profileLinksInEveryShapePeoplePasteBecomeOneMemberEach() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        try f.connection.execute("insert into do_not_contact (workspace_id, member_key) values (\(f.workspace), 'in:dnc-dave')")
        let run = try InmailqProcess.run(
            ["contacts", "add", "--database-url", f.db.url, "--campaign", String(campaign), "--profiles", Self.fixtures + "/profiles.txt"])
        #expect(run.status == 2, "\(run.output)")  // some links were rejected, the others stored
        // lisa-ray three times, jörg-müller twice (percent-encoded and not), one Sales Navigator lead twice.
        let keys = try f.connection.query("select member_key from contacts where campaign_id = \(campaign) order by member_key").rows
            .map { try $0.decode(String.self, "member_key") }
        #expect(keys == ["in:jörg-müller", "in:lisa-ray", "in:lite-leo", "in:mobile-mia", "in:tom-baker", "sales:ACwAAB1234567"])
        #expect(run.output.contains("added 6\nduplicates in the input 4\nalready in the campaign 0\non the do-not-contact list 1\n"))
        #expect(run.output.contains("rejected 4"))
        #expect(run.output.contains("line 11: https://www.linkedin.com/company/acme: \"https://www.linkedin.com/company/acme\": not a profile link"))
        #expect(run.output.contains("line 12: https://twitter.com/lisa: \"https://twitter.com/lisa\": not a linkedin.com link (host twitter.com)"))
        #expect(run.output.contains("line 13: not a link at all:"))
        #expect(run.output.contains("line 14: https://www.linkedin.com/in/:"))
        let again = try InmailqProcess.run(
            ["contacts", "add", "--database-url", f.db.url, "--campaign", String(campaign), "--profiles", Self.fixtures + "/profiles.txt"])
        #expect(again.output.contains("added 0\nduplicates in the input 4\nalready in the campaign 6\n"))
        #expect(again.status == 2)  // the same rejected links: the same exit status as the first time
        let json = try InmailqProcess.run(
            ["contacts", "add", "--database-url", f.db.url, "--campaign", String(campaign), "--profiles", Self.fixtures + "/profiles.txt", "--json"])
        #expect(json.status == 2)
        let object = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
        #expect(object?["already_in_campaign"] as? Int == 6)
        #expect(object?["do_not_contact"] as? Int == 1)
        let rejections = object?["rejected"] as? [[String: Any]]
        #expect(rejections?.count == 4)
        #expect(rejections?.first?["line"] as? Int == 11 && (rejections?.first?["reason"] as? String)?.contains("not a profile link") == true)
    }

    @Test func C2_aNastyCSVImportsItsGoodRowsAndReportsEachBadOneWithItsLineAndReason() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        let rejectedFile = NSTemporaryDirectory() + "inmailq-rejected-\(UInt32.random(in: 0...UInt32.max)).csv"
        defer { try? FileManager.default.removeItem(atPath: rejectedFile) }
        let run = try InmailqProcess.run(
            ["contacts", "import", "--database-url", f.db.url, "--campaign", String(campaign),
             "--csv", Self.fixtures + "/nasty.csv", "--rejected", rejectedFile])
        #expect(run.status == 2, "\(run.output)")  // rows were rejected; the good ones are stored
        #expect(run.output.contains("added 4\nduplicates in the input 1\nalready in the campaign 0\non the do-not-contact list 0\nin another active campaign of the workspace 0\nrejected 4\n"))
        // Lines count the file's lines: Grace's note spans three, the BOM and CRLFs change nothing.
        #expect(run.output.contains("  line 7: not a url,Bad,Row,Nowhere,,,,: \"not a url\": not a linkedin.com link"))
        #expect(run.output.contains("  line 9: https://www.linkedin.com/in/j%C3%B6rg-m%C3%BCller,Jörg,Müller,Bosch,Engineer,may: open profile \"maybe\" is not yes or no"))
        #expect(run.output.contains("  line 10: https://www.linkedin.com/sales/lead/ACwAAA123456,NAME_SEARCH,xYz,Sam,Lead,SalesC: 10 fields, but the header has 8"))
        #expect(run.output.contains("  line 11: https://m.linkedin.com/in/lin-mobile,Lin,Mobile,Phone Inc,CTO,true,Swift,extra,w: 11 fields, but the header has 8"))
        let ada = try f.connection.query(
            "select first_name, last_name, company, title, open_profile, custom_fields::text as custom from contacts where member_key = 'in:ada-lovelace'").first!
        #expect(try ada.decode(String?.self, "company") == "Analytical Engines, Ltd")
        #expect(try ada.decode(String?.self, "title") == "Countess")
        #expect(try ada.decode(Bool.self, "open_profile"))
        #expect(try ada.decode(String.self, "custom") == #"{"notes": "likes \"poetry\"; math", "favourite_tool": "Rust"}"#)
        let note = try f.connection.query("select custom_fields->>'notes' as note from contacts where member_key = 'in:grace-hopper'").first!
        #expect(try note.decode(String.self, "note") == "multi\r\nline\r\nnote")
        #expect(try f.count("select count(*) from contacts where member_key = 'in:short-row' and first_name = 'Short' and last_name is null") == 1)
        let rejected = try String(contentsOfFile: rejectedFile, encoding: .utf8)
        #expect(rejected.hasPrefix("LinkedIn URL,First Name,Last Name,Company,Job Title,Open Profile,Favourite Tool,Notes,reason\n"))
        #expect(rejected.split(separator: "\n").count == 5)
        // The custom columns are template fields now.
        try Campaigns.setStep(campaign: campaign, position: 0, subject: "Hi", body: "{{first_name|Hi}}, still using {{favourite_tool|it}}?", delayDays: nil, on: f.connection)
        try Campaigns.activate(campaign: campaign, on: f.connection)
        // Importing the same file again adds nothing.
        let again = try InmailqProcess.run(["contacts", "import", "--database-url", f.db.url, "--campaign", String(campaign), "--csv", Self.fixtures + "/nasty.csv"])
        #expect(again.output.contains("added 0\nduplicates in the input 1\nalready in the campaign 4\n"))
        #expect(again.status == 2)  // the same rejected rows, the same exit status
        #expect(try f.count("select count(*) from contacts where campaign_id = \(campaign)") == 4)
    }

    @Test func C2_aRowWithANulByteInvalidUTF8OrAHugeFieldIsRejectedAndTheGoodRowsStay() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        var data = Data("profile_url,first_name\n".utf8)
        data += Data("https://www.linkedin.com/in/good-one,Good\n".utf8)
        data += Data("https://www.linkedin.com/in/nul-byte,Nu".utf8) + Data([0]) + Data("l\n".utf8)
        data += Data("https://www.linkedin.com/in/latin-1,J".utf8) + Data([0xF6]) + Data("rg\n".utf8)
        data += Data("https://www.linkedin.com/in/huge,\(String(repeating: "x", count: 100_000))\n".utf8)
        data += Data("https://www.linkedin.com/in/good-two,Also good\n".utf8)
        let report = try ContactImport(campaign: campaign).run(data, on: f.connection)
        #expect(report.added == 2)
        #expect(report.rejected.map(\.line) == [3, 4, 5])
        #expect(report.rejected.map(\.reason) == ["contains a NUL byte", "not UTF-8 text", "100033 bytes long; a row may have at most 8192"])
        #expect(report.rejected.allSatisfy { $0.input.count <= 80 })
        #expect(try f.count("select count(*) from contacts where campaign_id = \(campaign)") == 2)
    }

    @Test func everyFreeTextInputIsBoundedWithAClearMessageAndNothingIsStored() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        let hugeSlug = "https://www.linkedin.com/in/" + String(repeating: "a", count: 100_000)
        let longSlug = "https://www.linkedin.com/in/" + String(repeating: "b", count: 101)
        let report = try Contacts.add(campaign: campaign, links: [(1, hugeSlug), (2, longSlug), (3, "linkedin.com/in/fine")], on: f.connection)
        #expect(report.added == 1)
        #expect(report.rejected.map(\.reason) == [
            "\"\(hugeSlug.prefix(120))\": 100028 bytes long; a profile link has at most 2048",
            "\"\(longSlug.prefix(120))\": the profile name after /in/ has 101 characters; LinkedIn's have at most 100",
        ])
        let body = #expect(throws: InputTooLong.self) {
            try Campaigns.setStep(campaign: campaign, position: 1, subject: nil, body: String(repeating: "x", count: 10_001), delayDays: 3, on: f.connection)
        }
        #expect(body?.description == "step 1 body (template): 10001 characters; at most 10000")
        #expect(try f.count("select count(*) from campaign_steps where campaign_id = \(campaign) and position = 1") == 0)
        // The database holds the same bounds against anything else that writes.
        #expect(throws: PostgresError.self) {
            try f.connection.execute("update contacts set first_name = repeat('x', 201) where campaign_id = \(campaign)")
        }
    }

    @Test func C2_aSemicolonSeparatedExportIsDetectedAndMapNamesItsColumns() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        let unmapped = try InmailqProcess.run(
            ["contacts", "import", "--database-url", f.db.url, "--campaign", String(campaign), "--csv", Self.fixtures + "/semicolons.csv"])
        #expect(unmapped.status != 0)
        #expect(unmapped.output.contains("no profile URL column among \"Profil LinkedIn\", \"Prénom\", \"Nom\", \"Entreprise\", \"Poste\""))
        let run = try InmailqProcess.run(
            ["contacts", "import", "--database-url", f.db.url, "--campaign", String(campaign), "--csv", Self.fixtures + "/semicolons.csv",
             "--map", "Profil LinkedIn=profile_url", "--map", "Prénom=first_name", "--map", "Nom=last_name",
             "--map", "Entreprise=company", "--map", "Poste=title"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("added 2\nduplicates in the input 1\n"))
        let amelie = try f.connection.query("select first_name, company, title from contacts where member_key = 'in:amelie-durand'").first!
        #expect(try amelie.decode(String?.self, "first_name") == "Amélie")
        #expect(try amelie.decode(String?.self, "company") == "Société Générale; Paris")
        #expect(try f.count("select count(*) from contacts where company = 'Renault, SA'") == 1)
    }

    @Test func C2_tenThousandRowsWithDuplicatesInvalidLinksAndDegrees_andMapOverridesAColumn() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        var importer = ContactImport(campaign: campaign)
        importer.mapping = ["Segment": "custom:audience"]
        let data = try #require(FileManager.default.contents(atPath: Self.fixtures + "/ten_thousand.csv"))
        let report = try importer.run(data, on: f.connection)
        #expect(report.added == 9_921)
        #expect(report.duplicatesInInput == 39)
        #expect(report.rejected.count == 40)
        #expect(report.rejected.filter { $0.reason.contains("not a linkedin.com link (host www.example.com)") }.count == 30)
        #expect(report.rejected.filter { $0.reason == "connection degree \"9\" is not 1, 2 or 3" }.count == 10)
        #expect(report.rejected.first?.line == 2)  // row 1 of the data is line 2 of the file
        #expect(try f.count("select count(*) from contacts where custom_fields ? 'audience' and not custom_fields ? 'segment'") == 9_921)
        #expect(try f.count("select count(*) from contacts where company like '%; Group, Ltd'") > 900)
        #expect(try f.count("select count(*) from contacts where connection_degree = 1") > 3_000)
        let bad = #expect(throws: ContactImport.Failure.self) {
            var wrong = ContactImport(campaign: campaign)
            wrong.mapping = ["Segment": "favourite_colour"]
            _ = try wrong.run(data, on: f.connection)
        }
        #expect(bad?.description.contains("unknown field") == true)
        #expect(try f.count("select count(*) from contacts where campaign_id = \(campaign)") == 9_921)
    }

    @Test func C2_aSearchURLIsCheckedAndItsJobAddsPeopleOfTheSandboxSearchPageByPage() throws {
        #expect(throws: SearchURLError.self) { try SearchURL("https://www.linkedin.com/in/lisa") }
        #expect(throws: SearchURLError.self) { try SearchURL("https://www.google.com/search/results/people/") }
        #expect(try SearchURL("linkedin.com/search/results/people/?keywords=cto").kind == .linkedin)
        #expect(try SearchURL("https://www.linkedin.com/sales/search/people?query=(x)").kind == .salesNavigator)
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        let search = try Searches.start(campaign: campaign, url: try SearchURL("https://www.linkedin.com/sales/search/people?query=(cto)"), max: 60, on: f.connection)
        try f.drain()
        let row = try f.connection.query("select pages, found, added, status from contact_searches where id = \(search)").first!
        #expect(try row.decode(String.self, "status") == "done")
        #expect(try row.decode(Int.self, "found") == 60)
        #expect(try row.decode(Int.self, "added") == 60)
        #expect(try row.decode(Int.self, "pages") == 3)
        #expect(try f.count("select count(*) from contacts where campaign_id = \(campaign) and member_key like 'sales:%' and first_name is not null") == 60)
    }

    @Test(.timeLimit(.minutes(3)))
    func C2_aSearchJobKilledMidwayResumesWhereItStoppedWithoutAddingAnyoneTwice() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        try f.connection.execute("update sandbox_settings set latency_ms = 400")  // a page takes 0.4 s
        let start = try InmailqProcess.run(
            ["contacts", "search", "--database-url", f.db.url, "--campaign", String(campaign),
             "--url", "https://www.linkedin.com/search/results/people/?keywords=resume", "--max", "1000"])
        #expect(start.status == 0, "\(start.output)")
        let first = try InmailqProcess.start(["worker", "--database-url", f.db.url, "--kinds", Searches.kind, "--lease", "1", "--log-level", "warning"])
        #expect(try eventually(timeout: .seconds(60)) { try f.count("select pages from contact_searches") >= 2 })
        first.child.signal(SIGKILL)
        _ = first.child.wait()
        let pagesAtKill = try f.count("select pages from contact_searches")
        #expect(try f.count("select count(*) from contact_searches where status = 'running'") == 1)
        let second = try InmailqProcess.start(["worker", "--database-url", f.db.url, "--kinds", Searches.kind, "--exit-when-done", "--log-level", "warning"])
        #expect(second.wait(timeout: .seconds(90)) == 0, "\(second.output)")
        let row = try f.connection.query("select pages, found, added, status from contact_searches").first!
        #expect(try row.decode(String.self, "status") == "done")
        #expect(try row.decode(Int.self, "pages") > pagesAtKill)
        let found = try row.decode(Int.self, "found")
        #expect(found >= 40 && found <= 200)  // the sandbox lists 40 to 200 people for a URL
        #expect(try row.decode(Int.self, "added") == found)
        #expect(try f.count("select count(*) from contacts where campaign_id = \(campaign)") == found)
    }

    @Test func peopleViewListsEachContactWithItsSenderStatusReasonAndLastEvent() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let ids = try f.contacts(campaign, ["seen", "quiet"])
        try f.connection.execute("update contacts set opted_out = true where id = \(ids[1])")
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let text = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign)])
        #expect(text.status == 0)
        #expect(text.output.hasPrefix("contact\tmember\tname\tsender\tstatus\treason\tlast event\n"), "\(text.output)")
        #expect(text.output.contains("\(ids[0])\tin:seen\t\t\(sender)\tsent\tawaiting a response\tInMail sent (1 credit)"))
        #expect(text.output.contains("\(ids[1])\tin:quiet\t\t-\tskipped\topted out of InMail (S2)\t"))
        let jsonl = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign), "--status", "skipped", "--jsonl"])
        let lines = jsonl.output.split(separator: "\n")
        #expect(lines.count == 1)
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(object?["status"] as? String == "skipped")
        #expect(object?["reason"] as? String == "opted out of InMail (S2)")
        // --json is one document: an array of every contact.
        let json = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign), "--json"])
        let array = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        #expect(array?.compactMap { $0["contact_id"] as? Int } == ids.map(Int.init))
        let unknown = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", "424242"])
        #expect(unknown.status != 0 && unknown.output.contains("no campaign with id 424242"))
    }

    /// The list is streamed in batches (100, then 1,000 at a time): every format stays whole
    /// and in order across the batches' seams.
    @Test func peopleViewOfTwentyFiveHundredContactsIsWholeAndInOrderInEachFormat() throws {
        let f = try OutreachFixture()
        let campaign = try draftCampaign(f)
        try f.connection.execute(
            """
            insert into contacts (campaign_id, workspace_id, member_key, profile_url)
            select id, workspace_id, 'in:many-' || n, 'https://www.linkedin.com/in/many-' || n
            from campaigns cross join generate_series(1, 2500) as n where id = \(campaign)
            """)
        let ids = try f.connection.query("select id from contacts where campaign_id = \(campaign) order by id").rows.map { try $0.decode(Int.self, "id") }
        let text = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign)])
        let lines = text.output.split(separator: "\n").dropFirst()
        #expect(lines.compactMap { Int($0.prefix { $0 != "\t" }) } == ids)
        let jsonl = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign), "--jsonl"])
        let objects = try jsonl.output.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(objects.compactMap { $0?["contact_id"] as? Int } == ids)
        let json = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign), "--json"])
        let array = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        #expect(array?.compactMap { $0["contact_id"] as? Int } == ids)
        let none = try InmailqProcess.run(["contacts", "list", "--database-url", f.db.url, "--campaign", String(campaign), "--status", "sent", "--json"])
        #expect(none.output == "[]\n")
    }
}
