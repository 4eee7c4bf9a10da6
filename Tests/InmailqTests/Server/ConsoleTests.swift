import AsyncHTTPClient
import Console
import Foundation
import InMail
import NIOCore
import NIOHTTP1
import Postgres
import Testing

/// The operators' console of a real `inmailq serve` process over real HTTP: two agencies in one
/// database, each signed in with its own login (made by `inmailq console add-login`).
@Suite("Operators' console")
struct ConsoleTests {
    /// Agency A: a campaign of Ann, Bob and Cy (sent to; Bob accepted) plus 60 members not yet
    /// activated; agency B: a campaign of Dee (sent to). Both with console logins.
    final class TwoAgencies {
        let fixture: OutreachFixture
        let agencyA: Int64, agencyB: Int64
        let campaignA: Int64, campaignB: Int64
        let accountA: Int64, accountB: Int64
        let jobA: Int64, jobB: Int64
        let serve: ServeProcess
        static let passwordA = "a-password-for-agency-a"
        static let passwordB = "a-password-for-agency-b"

        init() throws {
            fixture = try OutreachFixture()
            let c = fixture.connection
            agencyA = try c.queryOne("select agency_id from workspaces where id = \(fixture.workspace)").decode(Int64.self, "agency_id")
            accountA = try fixture.sender()
            campaignA = try fixture.campaign("Campaign of agency A", senders: [accountA])
            let people = try fixture.contacts(campaignA, ["ann-a", "bob-a", "cy-a"])
            _ = try Campaigns.activate(campaign: campaignA, on: c)
            try fixture.drain()
            _ = try fixture.respond(people[1], .acceptedDefault)  // R3: accepted, follow-ups go on

            let workspaceB = try fixture.accounts.workspace("Client of B")
            agencyB = try c.queryOne("select agency_id from workspaces where id = \(workspaceB)").decode(Int64.self, "agency_id")
            accountB = try fixture.accounts.account(plan: "sales_navigator", workspace: workspaceB, dailyLimit: 50)
            try fixture.accounts.renewCurrentCycle(accountB)
            campaignB = try Campaigns.create(workspace: workspaceB, name: "Campaign of agency B", on: c)
            try Campaigns.setStep(campaign: campaignB, position: 0, subject: "Hi", body: "Hello {{first_name|there}}", delayDays: nil, on: c)
            try Campaigns.addSender(campaign: campaignB, account: accountB, on: c)
            _ = try Contacts.add(campaign: campaignB, links: [(1, "linkedin.com/in/dee-b")], on: c)
            _ = try Campaigns.activate(campaign: campaignB, on: c)
            try fixture.drain()
            // Members added after activation wait in A's campaign: enough for two pages of People.
            try fixture.contacts(campaignA, (1...60).map { "waiting-\($0)" })

            jobA = try c.queryOne("select id from all_jobs where partition_key = \(String(accountA)) limit 1").decode(Int64.self, "id")
            jobB = try c.queryOne("select id from all_jobs where partition_key = \(String(accountB)) limit 1").decode(Int64.self, "id")

            let added = try InmailqProcess.run(
                ["console", "add-login", "--agency", "\(agencyA)", "--login", "agency-a", "--database-url", fixture.db.url],
                environment: ["INMAILQ_CONSOLE_PASSWORD": Self.passwordA])
            guard added.status == 0 else { throw DoubleProcessError(message: "add-login: \(added.output)") }
            try ConsoleLogins.add(login: "agency-b", agency: agencyB, password: Self.passwordB, on: c)
            serve = try ServeProcess(databaseURL: fixture.db.url)
        }

        func browser() -> Browser { Browser(base: serve.url) }
    }

    /// A browser's part of HTTP: cookies kept per name, forms posted with the page's Origin.
    final class Browser {
        let base: String
        var cookies: [String: String] = [:]
        var setCookieLines: [String] = []
        private let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))

        init(base: String) { self.base = base }
        deinit { try? http.syncShutdown() }

        struct Answer {
            let status: Int
            let location: String?
            let body: String
        }

        func get(_ path: String) throws -> Answer { try send(.GET, path, body: nil, origin: nil) }

        func post(_ path: String, _ form: [String: String], origin: String?? = .none) throws -> Answer {
            let body = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
            return try send(.POST, path, body: body, origin: origin ?? base)
        }

        /// Signs in through the form as a browser would: loads it (its CSRF cookie), then posts it.
        func signIn(_ login: String, _ password: String) throws -> Answer {
            let form = try get("/console/login")
            return try post("/console/login", ["login": login, "password": password, "csrf": Self.field("csrf", in: form.body) ?? ""])
        }

        static func field(_ name: String, in html: String) -> String? {
            guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
            return String(html[range.upperBound...].prefix { $0 != "\"" })
        }

        private func send(_ method: HTTPMethod, _ path: String, body: String?, origin: String?) throws -> Answer {
            var headers = HTTPHeaders()
            if !cookies.isEmpty { headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
            if let origin { headers.add(name: "Origin", value: origin) }
            if body != nil { headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded") }
            let request = try HTTPClient.Request(url: base + path, method: method, headers: headers, body: body.map { .string($0) })
            let response = try http.execute(request: request, deadline: .now() + .seconds(30)).wait()
            for line in response.headers["Set-Cookie"] {
                setCookieLines.append(line)
                let pair = line.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
                if value.isEmpty || line.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
            }
            return Answer(status: Int(response.status.code), location: response.headers.first(name: "Location"),
                          body: response.body.map { String(buffer: $0) } ?? "")
        }
    }

    @Test("no session: every page sends the browser to the sign-in form; wrong passwords and forged forms are refused")
    func signInRules() throws {
        let world = try TwoAgencies()
        let browser = world.browser()
        for path in ["/console", "/console/campaigns/\(world.campaignA)", "/console/campaigns/\(world.campaignA)/people",
                     "/console/accounts/\(world.accountA)", "/console/jobs/\(world.jobA)"] {
            let answer = try browser.get(path)
            #expect(answer.status == 303 && answer.location == "/console/login", "\(path): \(answer.status)")
        }
        let wrong = try browser.signIn("agency-a", "not-the-password")
        #expect(wrong.status == 401 && wrong.body.contains("Wrong login or password"))
        let unknown = try browser.signIn("nobody-here", "not-the-password")
        #expect(unknown.status == 401)
        #expect(try world.fixture.count("select count(*) from console_sessions") == 0)

        // A form without the sign-in page's token, or posted from another site, signs no one in.
        let noToken = try browser.post("/console/login", ["login": "agency-a", "password": TwoAgencies.passwordA])
        #expect(noToken.status == 403)
        let form = try browser.get("/console/login")
        let csrf = Browser.field("csrf", in: form.body) ?? ""
        let elsewhere = try browser.post("/console/login", ["login": "agency-a", "password": TwoAgencies.passwordA, "csrf": csrf],
                                         origin: "http://evil.example")
        #expect(elsewhere.status == 403)
        #expect(try world.fixture.count("select count(*) from console_sessions") == 0)

        let signedIn = try browser.post("/console/login", ["login": "agency-a", "password": TwoAgencies.passwordA, "csrf": csrf])
        #expect(signedIn.status == 303 && signedIn.location == "/console")
        let session = browser.setCookieLines.first { $0.hasPrefix("inmailq_session=") && !$0.contains("Max-Age=0") } ?? ""
        #expect(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/console"), "\(session)")
        // Only the token's SHA-256 is stored.
        let token = browser.cookies["inmailq_session"] ?? ""
        #expect(try world.fixture.count("select count(*) from console_sessions where token_sha256 = sha256(convert_to(\(token), 'UTF8'))") == 1)
        #expect(try world.fixture.count("select count(*) from console_sessions where encode(token_sha256, 'hex') = \(token)") == 0)

        // Signing out needs the session's CSRF token.
        let overview = try browser.get("/console")
        #expect(try browser.post("/console/logout", ["csrf": "forged"]).status == 403)
        #expect(try browser.get("/console").status == 200)
        let out = try browser.post("/console/logout", ["csrf": Browser.field("csrf", in: overview.body) ?? ""])
        #expect(out.status == 303 && out.location == "/console/login")
        #expect(try world.fixture.count("select count(*) from console_sessions") == 0)
        #expect(try browser.get("/console").status == 303)
    }

    @Test("five failed sign-ins in a row throttle a login, kept in the database: 429 with the right password, until 15 minutes after the last")
    func signInThrottle() throws {
        let world = try TwoAgencies()
        let browser = world.browser()
        for _ in 1...ConsoleLogins.allowedFailures {
            #expect(try browser.signIn("agency-a", "not-the-password").status == 401)
        }
        let throttled = try browser.signIn("agency-a", TwoAgencies.passwordA)
        #expect(throttled.status == 429 && throttled.body.contains("Too many failed sign-ins for this login"), "\(throttled.status)")
        #expect(try world.fixture.count("select count(*) from console_sessions") == 0)
        // Another login is not held back by agency A's.
        #expect(try world.browser().signIn("agency-b", TwoAgencies.passwordB).status == 303)

        // Failures apart by more than the window do not add up; past it, the right password works and the count starts over.
        try world.fixture.connection.execute("update console_logins set last_failed_sign_in = now() - interval '16 minutes' where login = 'agency-a'")
        #expect(try browser.signIn("agency-a", "not-the-password").status == 401)
        #expect(try world.fixture.count("select failed_sign_ins from console_logins where login = 'agency-a'") == 1)
        #expect(try browser.signIn("agency-a", TwoAgencies.passwordA).status == 303)
        #expect(try world.fixture.count("select failed_sign_ins from console_logins where login = 'agency-a'") == 0)
    }

    @Test("each agency sees its own queue, accounts, campaigns and jobs; another agency's ids are not found")
    func agencyIsolation() throws {
        let world = try TwoAgencies()
        let a = world.browser()
        #expect(try a.signIn("agency-a", TwoAgencies.passwordA).status == 303)
        let overview = try a.get("/console")
        #expect(overview.status == 200)
        #expect(overview.body.contains("Campaign of agency A") && !overview.body.contains("Campaign of agency B"))
        #expect(overview.body.contains("/console/accounts/\(world.accountA)\"") && !overview.body.contains("/console/accounts/\(world.accountB)\""))
        #expect(overview.body.contains("<td>inmail.send</td><td>completed</td><td class=\"n\">3</td>"), "A's three sends, not B's one")
        #expect(overview.body.contains("<svg"))
        // The accounts are paged by id: after A's only account, none, and a way back to the first.
        let later = try a.get("/console?accounts_after=\(world.accountA)")
        #expect(later.status == 200 && !later.body.contains("/console/accounts/\(world.accountA)\"") && later.body.contains("First accounts"))

        for path in ["/console/campaigns/\(world.campaignB)", "/console/accounts/\(world.accountB)", "/console/jobs/\(world.jobB)",
                     "/console/campaigns/999999", "/console/campaigns/\(world.campaignB)/people?status=sent"] {
            let answer = try a.get(path)
            #expect(answer.status == 404, "\(path): \(answer.status)")
            #expect(!answer.body.contains("dee-b") && !answer.body.contains("agency B"))
        }
        #expect(try a.get("/console/jobs/\(world.jobA)").status == 200)
        let account = try a.get("/console/accounts/\(world.accountA)")
        #expect(account.status == 200 && account.body.contains("id=\"ledger\"") && account.body.contains("reserve"))

        let b = world.browser()
        #expect(try b.signIn("agency-b", TwoAgencies.passwordB).status == 303)
        let campaignB = try b.get("/console/campaigns/\(world.campaignB)/people")
        #expect(campaignB.status == 200 && campaignB.body.contains("in:dee-b"))
        #expect(try b.get("/console/campaigns/\(world.campaignA)").status == 404)

        // The database, not the console, keeps the line: under A's console role no query sees B.
        let connection = world.fixture.connection
        let counts = try connection.transaction { connection in
            let role = try connection.queryOne("select console_role_name(\(world.agencyA)) as role").decode(String.self, "role")
            try connection.execute(SQL(unsafeText: "set local role \(quoteIdentifier(role))"))
            return try connection.queryOne("""
                select (select count(*) from campaigns) as campaigns, (select count(*) from contacts where campaign_id = \(world.campaignB)) as b_contacts,
                       (select sum(jobs) from reader_job_counts(now() - interval '1 day')) as jobs,
                       (select count(*) from reader_recent_jobs(now() - interval '1 day')) as recent_jobs,
                       (select count(*) from reader_recent_jobs(now() - interval '1 day') where partition_key = \(String(world.accountB))) as b_jobs,
                       (select count(*) from reader_job(\(world.jobB))) as job_b,
                       (select count(*) from reader_people(\(world.campaignB), null, null, 0, 50)) as b_people
                """)
        }
        #expect(try counts.decode(Int.self, "campaigns") == 1)
        #expect(try counts.decode(Int.self, "b_contacts") == 0)
        #expect(try counts.decode(Int.self, "jobs") >= 3)
        #expect(try counts.decode(Int.self, "recent_jobs") >= 3)
        #expect(try counts.decode(Int.self, "b_jobs") == 0)
        #expect(try counts.decode(Int.self, "job_b") == 0)
        #expect(try counts.decode(Int.self, "b_people") == 0)
    }

    @Test("the campaign page: its funnel per step and sender, and People filtered and paged on the server")
    func campaignPage() throws {
        let world = try TwoAgencies()
        let browser = world.browser()
        #expect(try browser.signIn("agency-a", TwoAgencies.passwordA).status == 303)
        let campaign = try browser.get("/console/campaigns/\(world.campaignA)")
        #expect(campaign.status == 200)
        // Step 0: three InMails sent, one accepted (R-rules count it once).
        #expect(campaign.body.contains("<tr><td>0</td><td class=\"n\">3</td><td class=\"n\">1</td>"), "\(campaign.body)")
        #expect(campaign.body.contains("Messages sent and answered per day"))
        #expect(campaign.body.contains("href=\"/console/campaigns/\(world.campaignA)/people\""))
        let page = try browser.get("/console/campaigns/\(world.campaignA)/people")
        #expect(page.status == 200)
        // 63 contacts: the first page holds 50 in id order and links to the rest.
        let rows = page.body.components(separatedBy: "<td class=\"n\">").count
        #expect(page.body.contains("in:ann-a") || page.body.contains("Ann"))
        #expect(!page.body.contains("in:waiting-60"))
        let next = try #require(page.body.range(of: "id=\"next-page\" href=\"").map { String(page.body[$0.upperBound...].prefix { $0 != "\"" }) })
        let second = try browser.get(next.replacingOccurrences(of: "&amp;", with: "&"))
        #expect(second.status == 200 && second.body.contains("in:waiting-60") && !second.body.contains("in:ann-a"))
        #expect(!second.body.contains("id=\"next-page\""))
        #expect(rows > 50)

        let accepted = try browser.get("/console/campaigns/\(world.campaignA)/people?status=accepted")
        #expect(accepted.body.contains("in:bob-a") && !accepted.body.contains("in:ann-a") && !accepted.body.contains("in:waiting-1<"))
        let search = try browser.get("/console/campaigns/\(world.campaignA)/people?q=waiting-5")
        #expect(search.body.contains("in:waiting-5<") && search.body.contains("in:waiting-59") && !search.body.contains("in:waiting-4<"))
        // A search is text, never a pattern: % matches a percent sign only.
        let pattern = try browser.get("/console/campaigns/\(world.campaignA)/people?q=%25")
        #expect(pattern.status == 200 && pattern.body.contains("no contacts here"))
    }

    @Test("inmailq console add-login refuses a short password, a malformed login and an unknown agency, naming them")
    func addLoginRefusals() throws {
        let db = try TestDatabase()
        let agency = try db.connect().queryOne("select admin_create_agency('Refusals') as id").decode(Int64.self, "id")
        func add(_ login: String, agency: Int64, password: String) throws -> (status: Int32, output: String) {
            try InmailqProcess.run(["console", "add-login", "--agency", "\(agency)", "--login", login, "--database-url", db.url],
                                   environment: ["INMAILQ_CONSOLE_PASSWORD": password])
        }
        let short = try add("ok-login", agency: agency, password: "short")
        #expect(short.status != 0 && short.output.contains("too short"))
        let malformed = try add("Bad Login!", agency: agency, password: "long-enough-password")
        #expect(malformed.status != 0 && malformed.output.contains("Bad Login!"))
        let unknown = try add("ok-login", agency: 987_654, password: "long-enough-password")
        #expect(unknown.status != 0 && unknown.output.contains("no agency with id 987654"))
        #expect(try count("select count(*) from console_logins", db.connect()) == 0)
        // Without a password given, one is made up and printed once; it signs in.
        let made = try InmailqProcess.run(["console", "add-login", "--agency", "\(agency)", "--login", "made-up", "--database-url", db.url])
        #expect(made.status == 0 && made.output.contains("password: "))
        #expect(try db.connect().queryOne("select password_hash from console_logins where login = 'made-up'")
            .decode(String.self, "password_hash").hasPrefix("$2b$12$"))
    }
}
