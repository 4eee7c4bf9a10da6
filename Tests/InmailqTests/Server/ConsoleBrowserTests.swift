import AsyncHTTPClient
import EmbeddedPostgres
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The console in a real browser: `make demo`'s script (two simulated days, on a cluster of its
/// own) ends by printing the console's address and a login; headless Chromium from Debian's
/// packages, driven through chromedriver's WebDriver API, signs in with it and reads what the
/// pages render. With INMAILQ_CONSOLE_SCREENSHOT=path, the campaign page's screenshot is saved
/// there (the README's picture is made this way).
@Suite("The console in headless Chromium")
struct ConsoleBrowserTests {
    @Test("the demo's agency: sign in, the overview, a campaign's funnel and chart, a sender account")
    func demoAgencyInChromium() throws {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: make test-deps installs chromium and chromium-driver")
        }
        let demo = try Demo()
        defer { demo.stop() }
        let browser = try WebDriver()
        defer { browser.quit() }

        try browser.open(demo.consoleURL)
        #expect(try browser.title().hasPrefix("Sign in"), "no session: the sign-in form")
        try browser.type("input[name=login]", demo.login)
        try browser.type("input[name=password]", demo.password)
        try browser.click("button[type=submit]")
        // A click that submits a form returns before the next page has loaded: wait for it.
        #expect(try browser.waitForTitle { $0.contains("Overview · Northwind Outreach") })
        let campaigns = try browser.text("#campaigns")
        #expect(campaigns.contains("Q4 hiring managers") && campaigns.contains("Acme Robotics") && campaigns.contains("Cedar Health"))
        let accounts = try browser.text("#accounts")
        #expect(accounts.contains("Dana (Sales Navigator)"))
        #expect(try browser.count("figure svg rect") > 12, "the last hour's chart has its bars")

        // The first client's campaign (the seed it was made from is a draft with no one in it).
        try browser.click("//table[@id='campaigns']//a[text()='Q4 hiring managers']", using: "xpath")
        let funnel = try browser.text("#funnel")
        #expect(funnel.contains("InMails sent") && funnel.contains("response rate"))
        #expect(try browser.count("#steps tr") >= 2)
        #expect(try browser.count("figure svg") == 1)
        if let path = ProcessInfo.processInfo.environment["INMAILQ_CONSOLE_SCREENSHOT"] {
            try browser.screenshot().write(to: URL(fileURLWithPath: path))
        }
        try browser.click("#people-link")
        #expect(try browser.waitForTitle { $0.hasPrefix("People") })
        #expect(try browser.count("#people-table tr") > 10)
        // Back to the campaign, and on to its first sender.
        try browser.click("p.muted a")
        try browser.click("#senders a")
        #expect(try browser.text("#account").contains("InMails"))
        #expect(try browser.count("#ledger tr") > 1)
    }

    /// `scripts/demo.sh` on a cluster of its own, until it prints the console's login line.
    final class Demo {
        let home = TestScratch.directory + "/demo-\(UInt32.random(in: 0...UInt32.max))"
        let process: ChildProcess
        let output: String
        var consoleURL = "", login = "", password = ""

        init() throws {
            output = home + ".log"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            var environment = ProcessInfo.processInfo.environment
            for name in ["DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER"] { environment[name] = nil }
            environment["INMAILQ_HOME"] = home
            environment["DEMO_DAYS"] = "2"
            environment["INMAILQ_SQL_DIR"] = TestPaths.root + "/sql"
            process = try ChildProcess.spawn(["/bin/bash", TestPaths.root + "/scripts/demo.sh", TestPaths.executable],
                                             environment: environment, outputPath: output)
            var line: Substring?
            _ = eventually(timeout: .seconds(240), every: 0.2) {
                let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                line = text.split(separator: "\n").first { $0.contains("console: http") }
                return line != nil || process.exitStatusIfEnded() != nil
            }
            guard let line else {
                let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
                stop()
                throw DoubleProcessError(message: "the demo printed no console line: \(text.suffix(3000))")
            }
            // "   console: http://127.0.0.1:PORT/console   login: northwind   password: ..."
            let words = line.split(separator: " ")
            consoleURL = String(words[words.firstIndex(of: "console:")! + 1])
            login = String(words[words.firstIndex(of: "login:")! + 1])
            password = String(words[words.firstIndex(of: "password:")! + 1])
        }

        func stop() {
            process.signal(SIGTERM)
            _ = process.wait()
            var environment = ProcessInfo.processInfo.environment
            environment["INMAILQ_HOME"] = home
            _ = try? ChildProcess.spawn([TestPaths.executable, "db", "stop"], environment: environment, outputPath: output).wait()
        }
    }

    /// A headless Chromium session through chromedriver's W3C WebDriver API, over HTTP.
    final class WebDriver {
        let driver: ChildProcess
        let base: String
        var session = ""
        private let http = HTTPClient(eventLoopGroupProvider: .singleton)

        init() throws {
            let port = Int.random(in: 20_000...60_000)
            base = "http://127.0.0.1:\(port)"
            driver = try ChildProcess.spawn(["/usr/bin/chromedriver", "--port=\(port)"], outputPath: TestScratch.directory + "/chromedriver.log")
            let up = eventually(timeout: .seconds(20), every: 0.1) { (try? self.call(.GET, "/status")) != nil }
            guard up else { driver.signal(SIGKILL); throw DoubleProcessError(message: "chromedriver did not start on port \(port)") }
            let created = try call(.POST, "/session", [
                "capabilities": ["alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": [
                        "binary": "/usr/bin/chromium",
                        // Root may not use Chromium's sandbox; the pages come from this test only.
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800"],
                    ],
                ]],
            ])
            session = (created as? [String: Any])?["sessionId"] as? String ?? ""
        }

        func quit() {
            if !session.isEmpty { _ = try? call(.DELETE, "/session/\(session)") }
            driver.signal(SIGTERM)
            _ = driver.wait()
            try? http.syncShutdown()
        }

        func open(_ url: String) throws { _ = try call(.POST, "/session/\(session)/url", ["url": url]) }
        func title() throws -> String { try call(.GET, "/session/\(session)/title") as? String ?? "" }

        /// Waits up to 15 s for the page's title to satisfy `condition`; false if it never does.
        func waitForTitle(_ condition: (String) -> Bool) throws -> Bool {
            try eventually(timeout: .seconds(15), every: 0.1) { condition(try title()) }
        }

        /// The element `selector` finds, waiting up to 15 s for it to appear (a page still loading).
        func element(_ selector: String, using: String = "css selector") throws -> String {
            var found: Any?
            _ = eventually(timeout: .seconds(15), every: 0.1) {
                found = try? call(.POST, "/session/\(session)/element", ["using": using, "value": selector])
                return found != nil
            }
            // The reference's one key is the W3C element identifier.
            guard let id = (found as? [String: Any])?.values.first as? String else {
                throw DoubleProcessError(message: "no element \(selector)")
            }
            return id
        }

        func count(_ css: String) throws -> Int {
            (try call(.POST, "/session/\(session)/elements", ["using": "css selector", "value": css]) as? [Any])?.count ?? 0
        }

        func type(_ css: String, _ text: String) throws {
            _ = try call(.POST, "/session/\(session)/element/\(try element(css))/value", ["text": text])
        }

        func click(_ selector: String, using: String = "css selector") throws {
            _ = try call(.POST, "/session/\(session)/element/\(try element(selector, using: using))/click", [:])
        }

        func text(_ css: String) throws -> String {
            try call(.GET, "/session/\(session)/element/\(try element(css))/text") as? String ?? ""
        }

        func screenshot() throws -> Data {
            Data(base64Encoded: try call(.GET, "/session/\(session)/screenshot") as? String ?? "") ?? Data()
        }

        /// A WebDriver command; returns its `value`, or throws the driver's error.
        private func call(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) throws -> Any? {
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
            let request = try HTTPClient.Request(url: base + path, method: method,
                                                 headers: ["Content-Type": "application/json"], body: data.map { .data($0) })
            let response = try http.execute(request: request, deadline: .now() + .seconds(60)).wait()
            let json = try response.body.flatMap { try JSONSerialization.jsonObject(with: Data(String(buffer: $0).utf8)) } as? [String: Any]
            guard response.status == .ok else {
                throw DoubleProcessError(message: "WebDriver \(method) \(path): \(response.status.code) \(json ?? [:])")
            }
            return json?["value"]
        }
    }
}
