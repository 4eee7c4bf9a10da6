import Foundation
import InMail
import Postgres
import Queue

/// Agencies, workspaces and sender accounts for tests, made through the admin functions.
struct AccountFixture {
    let connection: Connection

    /// A new agency and workspace; returns the workspace id.
    func workspace(_ name: String = "Client \(UInt32.random(in: 0...UInt32.max))") throws -> Int64 {
        let agency = try connection.query("select admin_create_agency(\("Agency \(UInt32.random(in: 0...UInt32.max))")) as id").first!.decode(Int64.self, "id")
        return try connection.query("select admin_create_workspace(\(agency), \(name)) as id").first!.decode(Int64.self, "id")
    }

    /// A sender account open around the clock with no spacing, unless told otherwise.
    func account(
        plan: String = "premium_career", workspace: Int64? = nil, timeZone: String = "UTC", anchor: String? = nil,
        dailyLimit: Int = 10, reserve: Int = 1, allDay: Bool = true
    ) throws -> Int64 {
        let workspaceID = try workspace ?? self.workspace()
        let anchorDate = try anchor ?? connection.query("select (clock_now() at time zone 'UTC')::date::text as d").first!.decode(String.self, "d")
        let id = try connection.query(
            "select admin_create_sender_account(\(workspaceID), \("Sender"), \(plan), \(anchorDate)::date, \(timeZone)) as id"
        ).first!.decode(Int64.self, "id")
        try connection.execute(
            """
            update sender_accounts
            set daily_inmail_limit = \(dailyLimit), credit_reserve = \(reserve), min_spacing = '0', max_spacing = '0'
            where id = \(id)
            """)
        if allDay {
            try connection.execute(
                "update sender_accounts set working_days = '{1,2,3,4,5,6,7}', working_start = '00:00', working_end = '24:00' where id = \(id)")
        }
        return id
    }

    /// Renews the account's current billing cycle (the plan's allotment, up to its cap).
    @discardableResult
    func renewCurrentCycle(_ account: Int64) throws -> Int {
        try connection.query(
            """
            select renew_credits(a.id, billing_cycle_start(a.billing_anchor, p.renewal_anchor, (clock_now() at time zone 'UTC')::date)) as granted
            from sender_accounts a join plans p on p.code = a.plan_code where a.id = \(account)
            """).first!.decode(Int.self, "granted")
    }

    func balance(_ account: Int64) throws -> Int {
        try connection.query("select credit_balance(\(account)) as b").first!.decode(Int.self, "b")
    }

    func ledgerSum(_ account: Int64) throws -> Int {
        try connection.query("select coalesce(sum(amount), 0)::int as s from credit_ledger where account_id = \(account)").first!.decode(Int.self, "s")
    }

    func reserve(_ account: Int64, key: String = UUID().uuidString, channel: SendRequest.Channel = .inmail, credit: Bool = true) throws -> Result<Int64, RefusalError> {
        try SendReservation.reserve(SendRequest(accountID: account, deliveryKey: key, channel: channel, usesCredit: credit), on: connection)
    }

    func refusal(_ result: Result<Int64, RefusalError>) -> String? {
        if case .failure(let error) = result { return error.refusal.reason.rawValue }
        return nil
    }
}
