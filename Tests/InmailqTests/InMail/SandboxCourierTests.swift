import Foundation
import InMail
import Postgres
import Testing

/// The simulated LinkedIn of the demo, the tests and the benchmarks.
@Suite("Sandbox courier")
struct SandboxCourierTests {
    @Test func theSameSeedMakesTheSameWorldAndAnotherSeedAnotherOne() {
        let keys = (0..<500).map { "contact:\($0):step:0" }
        let answers = { (seed: Int64) in keys.map { SandboxWorld(seed: seed).response(to: $0, channel: .inmail)?.kind } }
        #expect(answers(7) == answers(7))
        #expect(answers(7) != answers(8))
        let kinds = Set(answers(7).compactMap { $0 })
        #expect(kinds == Set(ResponseKind.allCases))  // every kind of response happens
        let unanswered = answers(7).filter { $0 == nil }.count
        #expect(unanswered > 250 && unanswered < 400)  // most InMails get no response
        let members = (0..<2_000).map { "in:member-\($0)" }
        let optedOut = members.filter { SandboxWorld(seed: 7).optedOut($0) }.count
        #expect(optedOut > 20 && optedOut < 120)
    }

    @Test func aKnownKeyGetsItsFirstReceiptARestrictedAccountAnAccountProblem() throws {
        let db = try TestDatabase()
        let connection = try db.connect()
        let courier = SandboxCourier(pool: ConnectionPool(db.configuration, capacity: 2), world: { _ in .perfect })
        let delivery = Delivery(key: "contact:1:step:0", accountID: 1, memberKey: "in:ada", channel: .inmail, subject: "Hi", body: "Hello")
        let first = try courier.deliver(delivery)
        let again = try courier.deliver(delivery)
        #expect(!first.repeated && again.repeated && again.id == first.id)
        let row = try connection.query("select requests, repeats from sandbox_messages where delivery_key = 'contact:1:step:0'").first!
        #expect(try row.decode(Int.self, "requests") == 2 && row.decode(Int.self, "repeats") == 1)
        try connection.execute("update sandbox_settings set restricted_accounts = '{2}'")
        var restricted = delivery
        restricted.key = "contact:2:step:0"
        restricted.accountID = 2
        #expect(throws: CourierError.accountProblem(reason: "sandbox: account 2 is restricted")) { try courier.deliver(restricted) }
        #expect(try connection.query("select count(*) from sandbox_messages where receipt is not null").first!.decode(Int.self, at: 0) == 1)
    }
}
