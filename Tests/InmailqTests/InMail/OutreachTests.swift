import Foundation
import InMail
import Postgres
import Queue
import Testing

/// The send and follow-up jobs, responses and reports, run in-process against the sandbox
/// courier. Test names cite the rules of ../shared/DOMAIN.md.
@Suite("Sending, sequences and responses")
struct OutreachTests {
    @Test func S1_S3_S8_channelAndCreditPerContact_freeInMailsGoOnWhileCreditInMailsWaitForCredits() throws {
        let f = try OutreachFixture()
        let sender = try f.sender(plan: "premium_career")  // 5 credits; the reserve of 1 leaves 4 to spend (S7)
        let campaign = try f.campaign(senders: [sender])
        let paid = try f.contacts(campaign, (1...6).map { "paid-\($0)" })
        let open = try f.contacts(campaign, ["open-1", "open-2"], set: "open_profile = true")
        let connection = try f.contacts(campaign, ["friend"], set: "connection_degree = 1")
        let optedOut = try f.contacts(campaign, ["quiet"], set: "opted_out = true")
        #expect(try Campaigns.activate(campaign: campaign, on: f.connection) == 9)
        try f.drain()

        #expect(try f.contact(optedOut[0]) == ("skipped", "opted out of InMail (S2)"))
        #expect(try f.count("select count(*) from jobs where args->>'contact_id' = \(String(optedOut[0]))") == 0)
        for id in open {  // S1: free InMails
            let message = try #require(try f.message(id))
            #expect(try message.decode(String.self, "channel") == "inmail")
            #expect(try message.decode(Bool.self, "uses_credit") == false)
        }
        let friendMessage = try #require(try f.message(connection[0]))  // S3: a regular message, no subject, no credit
        #expect(try friendMessage.decode(String.self, "channel") == "message")
        #expect(try friendMessage.decode(String?.self, "subject") == nil)
        #expect(try f.count("select count(*) from messages where contact_id = any(\(paid)::bigint[]) and state = 'sent'") == 4)
        #expect(try f.accounts.balance(sender) == 1)
        let waiting = try paid.map { try f.contact($0) }.filter { $0.status == "waiting" }
        #expect(waiting.count == 2)
        #expect(waiting.allSatisfy { $0.reason == "waiting for credits (S7, S8)" })

        // S8: bought credits let the waiting credit InMails go at once.
        try f.connection.execute("select purchase_credits(\(sender), 5)")
        try f.drain()
        #expect(try f.count("select count(*) from messages where contact_id = any(\(paid)::bigint[]) and state = 'sent'") == 6)
        #expect(try f.accounts.balance(sender) == 4)
        #expect(try f.accounts.ledgerSum(sender) == f.accounts.balance(sender))
    }

    @Test func S1_freeInMailsStopAtTheAccountsMonthlyCapWhileCreditInMailsGoOn() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        try f.connection.execute("update sender_accounts set monthly_free_inmail_limit = 2 where id = \(sender)")
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let open = try f.contacts(campaign, ["open-a", "open-b", "open-c"], set: "open_profile = true")
        let paid = try f.contacts(campaign, ["paid-a", "paid-b"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        #expect(try f.count("select count(*) from messages where contact_id = any(\(open)::bigint[])") == 2)
        #expect(try f.count("select count(*) from messages where contact_id = any(\(paid)::bigint[])") == 2)
        let waiting = try open.map { try f.contact($0) }.filter { $0.status == "waiting" }
        #expect(waiting.count == 1 && waiting[0].reason == "monthly free InMail cap of its sender reached")
        try f.advance("32 days")  // the next month of the account's calendar, whatever today is
        #expect(try f.count("select count(*) from messages where contact_id = any(\(open)::bigint[])") == 3)
    }

    @Test func S4_noSecondInMailFromAnAccountToAMemberBeforeTheyRespondToTheFirst() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let first = try f.campaign("First", senders: [sender], followUpDelays: [])
        let lisa = try f.contacts(first, ["lisa"])[0]
        try Campaigns.activate(campaign: first, on: f.connection)
        try f.drain()
        #expect(try f.contact(lisa).status == "sent")
        // The operator ends the first campaign's sequence by hand; the member joins a second campaign.
        try f.connection.execute("update contacts set status = 'finished' where id = \(lisa)")
        let second = try f.campaign("Second", senders: [sender], followUpDelays: [])
        let again = try f.contacts(second, ["lisa"])[0]
        let balance = try f.accounts.balance(sender)
        try Campaigns.activate(campaign: second, on: f.connection)
        try f.drain()
        #expect(try f.contact(again) == ("skipped", "an earlier InMail from sender \(sender) awaits this member's response (S4)"))
        #expect(try f.accounts.balance(sender) == balance)  // nothing spent
        #expect(try f.count("select count(*) from reservations where account_id = \(sender) and state = 'held'") == 0)

        // The database refuses it whatever the application does.
        let reservation = try #require(try f.accounts.reserve(sender, key: "manual").get())
        let refused = #expect(throws: PostgresError.self) {
            try f.connection.execute(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body, reservation_id)
                values (\(again), \(second), \(sender), 'in:lisa', 0, 'inmail', true, 'manual', 'Hi', \(reservation))
                """)
        }
        #expect(refused?.constraint == "messages_one_open_inmail_idx")
        // Once Lisa responds to the first InMail, a new one may go.
        _ = try f.respond(lisa, .declined)
        try f.connection.execute(
            """
            insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body, reservation_id)
            values (\(again), \(second), \(sender), 'in:lisa', 0, 'inmail', true, 'manual', 'Hi', \(reservation))
            """)
    }

    @Test func S5_aTextTooLongAfterPersonalisationFailsThatContactWithTheReasonAndSpendsNothing() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [], body: "Hello {{first_name|there}}, about {{pitch|our work}}.")
        let long = try f.contacts(campaign, ["long"], set: SQL(unsafeText: "custom_fields = jsonb_build_object('pitch', repeat('x', 1890))"))[0]
        let fine = try f.contacts(campaign, ["short"], set: "custom_fields = '{\"pitch\": \"a short pitch\"}'")[0]
        let balance = try f.accounts.balance(sender)
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let failed = try f.contact(long)
        #expect(failed.status == "failed")
        #expect(failed.reason == "step 0 (InMail) body: 1910 characters, more than the limit of 1900 (S5)")
        #expect(try f.message(long) == nil)
        #expect(try f.contact(fine).status == "sent")
        #expect(try f.accounts.balance(sender) == balance - 1)  // only the short one spent a credit
        #expect(try f.count("select inmails from daily_usage where account_id = \(sender)") == 1)
        // The database holds the line too: no stored message exceeds the limits.
        let tooLong = #expect(throws: PostgresError.self) {
            try f.connection.execute("update messages set body = repeat('y', 1901) where contact_id = \(fine)")
        }
        #expect(tooLong?.message.contains("more than the limit of 1900 (S5)") == true)
        // An insert is refused as well, writing nothing; one within the limit is written.
        let messages = try f.count("select count(*) from messages")
        let tooLongInserted = #expect(throws: PostgresError.self) {
            try f.writeMessageByHand(to: fine, step: 1, body: String(repeating: "y", count: 1901))
        }
        #expect(tooLongInserted?.sqlState == "23514")
        #expect(tooLongInserted?.message.contains("body has 1901 characters, more than the limit of 1900 (S5)") == true)
        #expect(try f.count("select count(*) from messages") == messages)
        try f.writeMessageByHand(to: fine, step: 1, body: String(repeating: "y", count: 1900))
        #expect(try f.count("select count(*) from messages") == messages + 1)
    }

    @Test func R1_R2_R3_C3_aDefaultAcceptanceGivesTheCreditBackAndStartsFollowUpsAtTheirDelays() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3, 5])
        let (early, late) = try f.contacts(campaign, ["early", "late"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let balance = try f.accounts.balance(sender)

        try f.advance("1 day")
        let accepted = try f.respond(early, .acceptedDefault)
        #expect(accepted.outcome == "accepted" && accepted.creditedBack && accepted.contactStatus == .accepted)  // R1, R3
        #expect(try f.accounts.balance(sender) == balance + 1)
        try f.drain()
        #expect(try f.message(early, step: 1) == nil)  // C3: not before its delay of 3 days after the InMail
        try f.advance("2 days 1 minute")
        let followUp = try #require(try f.message(early, step: 1))
        #expect(try followUp.decode(String.self, "channel") == "message")
        #expect(try followUp.decode(Bool.self, "uses_credit") == false)
        #expect(try f.count("select messages from daily_usage where account_id = \(sender) order by local_day desc limit 1") == 1)
        try f.advance("4 days")
        #expect(try f.message(early, step: 2) == nil)  // 5 days after follow-up 1
        try f.advance("1 day 1 minute")
        #expect(try f.message(early, step: 2) != nil)
        #expect(try f.contact(early) == ("finished", "every follow-up sent"))

        // Accepted after the first delay has passed: the first follow-up goes the same day (C3).
        let auto = try f.respond(late, .interested)  // R2: an auto-reply "Interested" is an acceptance
        #expect(auto.outcome == "accepted" && auto.creditedBack)
        try f.drain()
        let sameDay = try #require(try f.message(late, step: 1))
        #expect(try sameDay.decode(String.self, "state") == "sent")
    }

    @Test func R4_anEditedAcceptanceOrAReplyCountsAsAResponderAndStopsTheSequence() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3, 5])
        let (edited, replier) = try f.contacts(campaign, ["edited", "replier"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let stopped = try f.respond(edited, .acceptedEdited, text: "Sure, let's talk")
        #expect(stopped.contactStatus == .replied && stopped.creditedBack)
        // The replier accepts by default, gets follow-up 1, then replies to it: no follow-up 2.
        _ = try f.respond(replier, .acceptedDefault)
        try f.advance("3 days 1 minute")
        #expect(try f.message(replier, step: 1) != nil)
        #expect(try f.respond(replier, step: 1, .reply, text: "Stop, please").contactStatus == .replied)
        try f.advance("10 days")
        #expect(try f.count("select count(*) from messages where contact_id in (\(edited), \(replier)) and step > 0") == 1)
        #expect(try f.contact(edited) == ("replied", "responded: sequence stopped (R4)"))
        let report = try f.connection.query("select accepted, responders, follow_ups_sent from campaign_report where campaign_id = \(campaign)").first!
        #expect(try report.decode(Int.self, "accepted") == 2)
        #expect(try report.decode(Int.self, "responders") == 2)
        #expect(try report.decode(Int.self, "follow_ups_sent") == 1)
    }

    @Test func R5_aDeclineOrNotInterestedEndsTheSequenceAndStillGivesTheCreditBack() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3])
        let (declines, notInterested) = try f.contacts(campaign, ["declines", "not-interested"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let balance = try f.accounts.balance(sender)
        #expect(try f.respond(declines, .declined).contactStatus == .declined)
        #expect(try f.respond(notInterested, .notInterested).contactStatus == .declined)
        #expect(try f.accounts.balance(sender) == balance + 2)
        try f.advance("5 days")
        #expect(try f.count("select count(*) from messages where step > 0") == 0)
        #expect(try f.count("select count(*) from all_jobs where kind = 'inmail.follow_up'") == 0)
        #expect(try f.count("select responders from campaign_report where campaign_id = \(campaign)") == 0)
    }

    @Test func R1_noCreditBackAfterNinetyDaysForAFreeInMailOrForTheSameResponseTwice() throws {
        let f = try OutreachFixture()
        let sender = try f.sender(plan: "sales_navigator_core")
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let (slow, free) = try f.contacts(campaign, ["slow", "free"]).pair
        try f.connection.execute("update contacts set open_profile = true where id = \(free)")
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let freeResponse = try f.respond(free, .acceptedDefault)
        #expect(freeResponse.creditedBack == false)
        #expect(try f.respond(free, .acceptedDefault).outcome == "duplicate")
        try f.connection.execute("select clock_advance('91 days')")
        try f.accounts.renewCurrentCycle(sender)
        let balance = try f.accounts.balance(sender)
        let late = try f.respond(slow, .reply, text: "Sorry for the delay")
        #expect(late.creditedBack == false && late.contactStatus == .replied)
        #expect(try f.accounts.balance(sender) == balance)
        #expect(try f.accounts.ledgerSum(sender) == f.accounts.balance(sender))
    }

    @Test func R6_withoutAResponseNothingMoreIsSent_noReminderOfOurOwn() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3, 3])
        let id = try f.contacts(campaign, ["silent"])[0]
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        for _ in 0..<4 { try f.advance("5 days") }
        #expect(try f.count("select count(*) from messages where contact_id = \(id)") == 1)
        #expect(try f.contact(id) == ("sent", "awaiting a response"))
    }

    @Test func aPausedCampaignSendsNothingUntilItIsActivatedAgain() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let ids = try f.contacts(campaign, ["one", "two"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try Campaigns.pause(campaign: campaign, on: f.connection)
        let balance = try f.accounts.balance(sender)
        try f.drain()
        #expect(try ids.map { try f.contact($0).status } == ["waiting", "waiting"])
        #expect(try ids.map { try f.contact($0).reason } == ["campaign is paused", "campaign is paused"])
        #expect(try f.accounts.balance(sender) == balance)
        #expect(throws: PostgresError.self) { try Campaigns.pause(campaign: campaign, on: f.connection) }  // already paused
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.advance("61 minutes")
        #expect(try ids.map { try f.contact($0).status } == ["sent", "sent"])
    }

    @Test func theDoNotContactListStopsTheMembersSequencesAndKeepsThemOut() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3])
        let (sent, waiting) = try f.contacts(campaign, ["early-bird", "late-comer"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        try f.connection.execute("update contacts set status = 'waiting' where id = \(waiting)")  // as if not sent yet
        try f.connection.execute("delete from messages where contact_id = \(waiting)")
        let run = try InmailqProcess.run(
            ["contacts", "do-not-contact", "--database-url", f.db.url, "--workspace", String(f.workspace), "--reason", "asked us to stop",
             "https://www.linkedin.com/in/early-bird", "linkedin.com/in/late-comer/", "https://example.com/x"])
        #expect(run.status == 2, "\(run.output)")  // one link rejected, the others listed
        #expect(run.output.contains("listed 2 (the others were listed already)\nsequences stopped 2\nrejected 1"))
        #expect(try f.contact(sent) == ("skipped", "on the do-not-contact list"))
        #expect(try f.contact(waiting) == ("skipped", "on the do-not-contact list"))
        _ = try f.respond(sent, .acceptedDefault)  // a late acceptance starts nothing
        try f.advance("4 days")
        #expect(try f.count("select count(*) from messages where step > 0") == 0)
        let other = try f.campaign("Later", senders: [sender], followUpDelays: [])
        let report = try Contacts.add(campaign: other, links: [(1, "https://www.linkedin.com/in/early-bird")], on: f.connection)
        #expect(report.added == 0 && report.doNotContact == 1)
    }

    @Test func anEndedCampaignSendsNothingMoreButStillRecordsResponses() throws {
        let f = try OutreachFixture()
        let sender = try f.sender(dailyLimit: 1)
        let campaign = try f.campaign(senders: [sender], followUpDelays: [3])
        let (first, second) = try f.contacts(campaign, ["first-one", "second-one"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()  // the daily limit of 1 lets only the first InMail go today
        let balance = try f.accounts.balance(sender)
        let ended = try InmailqProcess.run(["campaigns", "end", String(campaign), "--as", "archived", "--database-url", f.db.url])
        #expect(ended.status == 0, "\(ended.output)")
        #expect(try f.contact(second) == ("skipped", "campaign archived"))
        #expect(try f.respond(first, .acceptedDefault).creditedBack)  // R1 still holds
        try f.advance("4 days")
        #expect(try f.count("select count(*) from messages") == 1)  // neither the second InMail nor a follow-up
        #expect(try f.accounts.balance(sender) == balance + 1)
        let again = #expect(throws: PostgresError.self) { try Campaigns.end(campaign: campaign, as: "completed", on: f.connection) }
        #expect(again?.message == "campaign \(campaign) is already archived")
    }

    @Test func aMembersReplyStopsEverySequenceOfTheWorkspaceAimedAtThem() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let old = try f.campaign("Old", senders: [sender], followUpDelays: [])
        let first = try f.contacts(old, ["omar"])[0]
        try Campaigns.activate(campaign: old, on: f.connection)
        try f.drain()
        try f.connection.execute("update contacts set status = 'finished' where id = \(first)")
        let paused = try f.campaign("New", senders: [sender], followUpDelays: [])
        let second = try f.contacts(paused, ["omar"])[0]  // waiting in a draft campaign
        _ = try f.respond(first, .reply, text: "Please stop writing to me")
        #expect(try f.contact(second) == ("skipped", "the member replied to campaign \(old) of the workspace"))
    }

    @Test func stickySendersSpreadByDailyLimitAndKeepTheirContactsForFollowUps() throws {
        let f = try OutreachFixture()
        let small = try f.sender(dailyLimit: 10)
        let other = try f.sender(dailyLimit: 10)
        let large = try f.sender(plan: "sales_navigator_core", dailyLimit: 20)
        let campaign = try f.campaign(senders: [small, other, large], followUpDelays: [3])
        let ids = try f.contacts(campaign, (1...40).map { "pool-\($0)" })
        try Campaigns.activate(campaign: campaign, on: f.connection)
        let spread = try f.connection.query(
            "select sender_account_id as a, count(*) as n from contacts where campaign_id = \(campaign) group by 1 order by 1").rows
        #expect(try spread.map { try $0.decode(Int.self, "n") } == [10, 10, 20])
        try f.drain()
        for id in ids.prefix(5) { _ = try f.respond(id, .acceptedDefault) }
        try f.advance("3 days 1 minute")
        #expect(try f.count(
            """
            select count(*) from messages f join messages i on i.contact_id = f.contact_id and i.step = 0
            where f.step = 1 and f.account_id = i.account_id
            """) == 5)
        // The database keeps it so: a contact that was written to keeps its sender.
        let moved = #expect(throws: PostgresError.self) {
            try f.connection.execute("update contacts set sender_account_id = \(large) where id = \(ids[0]) and sender_account_id <> \(large)")
        }
        #expect(moved?.message.contains("its sender cannot change") == true)
        // Nor can a message to it go from another account, whether inserted or moved.
        let sender = try f.message(ids[0])!.decode(Int64.self, "account_id")
        let another = [small, other, large].first { $0 != sender }!
        let fromAnother = #expect(throws: PostgresError.self) {
            try f.writeMessageByHand(to: ids[0], step: 2, from: another, body: "Hello again")
        }
        #expect(fromAnother?.sqlState == "23514")
        #expect(fromAnother?.message.contains("but contact \(ids[0])'s sender is account") == true)
        #expect(try f.message(ids[0], step: 2) == nil)
        let movedMessage = #expect(throws: PostgresError.self) {
            try f.connection.execute("update messages set account_id = \(another) where contact_id = \(ids[0]) and step = 0")
        }
        #expect(movedMessage?.sqlState == "23514")
    }

    /// A message is of an existing contact, to its member, in its campaign, from its sender and
    /// under an existing reservation, whoever writes the row; and a contact with messages stays whole:
    /// the database checks both sides, as the four foreign keys it replaces did (once per
    /// statement for inserts).
    @Test func C2_C3_S4_aMessageIsOfAnExistingContactToItsMemberInItsCampaignAndItsContactStays() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign("Named", senders: [sender], followUpDelays: [])
        let other = try f.campaign("Other", senders: [sender], followUpDelays: [])
        let ids = try f.contacts(campaign, ["one", "two"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        #expect(try f.count("select count(*) from messages") == 2)
        let reservation = try f.accounts.reserve(sender, key: "by-hand:1", channel: .message, credit: false).get()
        let spare = try f.accounts.reserve(sender, key: "by-hand:2", channel: .message, credit: false).get()
        func insert(_ rows: [(contact: Int64, campaign: Int64, reservation: Int64)]) throws {
            try f.connection.execute(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body,
                                      reservation_id)
                select r.contact_id, r.campaign_id, \(sender), 'in:one', 1, 'message', false, 'by-hand:' || r.contact_id, 'Hi', r.reservation_id
                from unnest(\(rows.map(\.contact))::bigint[], \(rows.map(\.campaign))::bigint[], \(rows.map(\.reservation))::bigint[])
                     as r(contact_id, campaign_id, reservation_id)
                """)
        }
        func refused(_ sql: SQL, _ state: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let error = #expect(throws: PostgresError.self, sourceLocation: sourceLocation) { try f.connection.execute(sql) }
            #expect(error?.sqlState == state, sourceLocation: sourceLocation)
            #expect(error?.message.contains(text) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
        }
        // A good row and one naming no contact in a statement: the statement stores neither.
        let mixed = #expect(throws: PostgresError.self) {
            try insert([(ids[0], campaign, reservation), (ids[1] + 1000, campaign, spare)])
        }
        #expect(mixed?.sqlState == "23503")
        #expect(mixed?.message.contains("names contact \(ids[1] + 1000), which does not exist") == true)
        let elsewhere = #expect(throws: PostgresError.self) { try insert([(ids[0], other, reservation)]) }
        #expect(elsewhere?.sqlState == "23514")
        #expect(elsewhere?.message.contains("is in campaign \(other), but contact \(ids[0]) is in campaign \(campaign)") == true)
        // To its contact's member: S4's index goes by the message's member key.
        refused("""
            insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body,
                                  reservation_id)
            values (\(ids[0]), \(campaign), \(sender), 'in:two', 1, 'message', false, 'by-hand:other-member', 'Hi', \(reservation))
            """, "23514", "is to member in:two, but contact \(ids[0]) is member in:one")
        let noReservation = #expect(throws: PostgresError.self) { try insert([(ids[0], campaign, reservation + 1000)]) }
        #expect(noReservation?.sqlState == "23503")
        #expect(noReservation?.message.contains("reservation \(reservation + 1000), which does not exist") == true)
        #expect(try f.count("select count(*) from messages") == 2)
        // Updates are checked row by row.
        refused("update messages set campaign_id = \(other) where contact_id = \(ids[0])", "23514", "is in campaign \(other)")
        refused("update messages set member_key = 'in:nobody' where contact_id = \(ids[0])", "23514", "is to member in:nobody")
        refused("update messages set contact_id = \(ids[1] + 1000) where contact_id = \(ids[0])", "23503", "which does not exist")
        refused("update messages set reservation_id = \(reservation + 1000) where contact_id = \(ids[0])", "23503",
                "reservation \(reservation + 1000)")

        // The contact side: one with messages is neither deleted nor moved, and no contact's id changes.
        refused("delete from contacts where id = \(ids[0])", "23503", "contact \(ids[0]) has messages")
        refused("update contacts set campaign_id = \(other) where id = \(ids[0])", "23514", "cannot move to another campaign")
        refused("update contacts set member_key = 'in:renamed' where id = \(ids[0])", "23514", "its member key cannot change")
        refused("update contacts set id = default where id = \(ids[0])", "23001", "contact ids never change")
        refused("truncate contacts", "23001", "messages name them")
        // Reading one snapshot, the delete's check could miss a message committed meanwhile: refused outright.
        let snapshot = #expect(throws: PostgresError.self) {
            try f.connection.execute("begin isolation level repeatable read")
            defer { _ = try? f.connection.execute("rollback") }
            try f.connection.execute("delete from contacts where id = \(ids[0])")
        }
        #expect(snapshot?.sqlState == "25000")
        #expect(try f.count("select count(*) from messages m join contacts c on c.id = m.contact_id and c.campaign_id = m.campaign_id") == 2)
        // A contact without messages goes, as before.
        let unsent = try f.contacts(other, ["three"])[0]
        try f.connection.execute("delete from contacts where id = \(unsent)")
        #expect(try f.count("select count(*) from contacts where id = \(unsent)") == 0)
    }

    /// The race the share lock on a message's contact closes: a change of the contact's sender
    /// that comes while another transaction's message to it is not committed waits for that
    /// transaction, then sees the message and is refused (a key share lock, as a foreign key
    /// takes, would have let it through).
    @Test func C2_aContactsSenderChangeWaitsForItsMessageBeingWrittenAndIsRefused() throws {
        let f = try OutreachFixture()
        let first = try f.sender()
        let second = try f.sender()
        let campaign = try f.campaign(senders: [first, second], followUpDelays: [])
        let contact = try f.contacts(campaign, ["raced"], set: "sender_account_id = \(first)")[0]
        let configuration = f.db.configuration
        let changer = try f.connection.transaction { connection in
            let reservation = try f.accounts.reserve(first, key: "raced", channel: .message, credit: false).get()
            try connection.execute(
                """
                insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body,
                                      reservation_id)
                values (\(contact), \(campaign), \(first), 'in:raced', 0, 'message', false, 'raced', 'Hi', \(reservation))
                """)
            return try RacingWork.waitingForALock(heldBy: connection, runningLike: "update contacts%") {
                _ = try Connection(configuration).execute("update contacts set sender_account_id = \(second) where id = \(contact)")
            }
        }
        guard let error = changer.refusal(within: .seconds(20), of: "the sender change") else { return }
        #expect(error.message.contains("its sender cannot change"))
        #expect(try f.count("select count(*) from contacts where id = \(contact) and sender_account_id = \(first)") == 1)
    }

    @Test func courierRefusalsAreClassed_retryKeepsTheReservation_rateLimitAndAccountProblemWait_unreachableSkips() throws {
        let script: [String: [ScriptedCourier.Step]] = [
            "in:flaky": [.refuse(.retryLater(reason: "gateway timeout"))],
            "in:busy": [.refuse(.rateLimited(retryAfter: .seconds(1800)))],
            "in:gone": [.refuse(.recipientUnreachable(reason: "profile deleted"))],
            "in:private": [.refuse(.optedOut)],
        ]
        let f = try OutreachFixture { ScriptedCourier(pool: $0, script: script) }
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let ids = try f.contacts(campaign, ["flaky", "busy", "gone", "private"])
        let balance = try f.accounts.balance(sender)
        try Campaigns.activate(campaign: campaign, on: f.connection)
        let outcomes = try f.drain()
        #expect(outcomes[Outreach.sendKind]?.contains { if case .failed = $0 { true } else { false } } == true)
        #expect(try f.contact(ids[2]) == ("skipped", "recipient cannot receive it"))
        #expect(try f.contact(ids[3]) == ("skipped", "opted out of InMail (S2)"))
        #expect(try f.count("select count(*) from reservations where state = 'held'") == 1)  // the flaky one keeps its
        // The rate limit made the whole account wait (nothing spent for busy); after it, both go.
        #expect(try f.contact(ids[1]).status == "waiting")
        try f.advance("31 minutes")
        #expect(try f.contact(ids[0]).status == "sent")
        #expect(try f.contact(ids[1]).status == "sent")
        #expect(try f.accounts.balance(sender) == balance - 2)
        #expect(try f.count("select count(*) from reservations where state = 'released'") == 3)
        #expect(try f.accounts.ledgerSum(sender) == f.accounts.balance(sender))
    }

    @Test func A7_anAccountProblemPausesTheAccountAndItsWorkWaitsUntilItIsResumed() throws {
        let f = try OutreachFixture { ScriptedCourier(pool: $0, script: ["in:first": [.refuse(.accountProblem(reason: "restricted"))]]) }
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let ids = try f.contacts(campaign, ["first", "second"])
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        #expect(try f.connection.query("select status from sender_accounts where id = \(sender)").first!.decode(String.self, "status") == "paused")
        let reasons = try ids.map { try f.contact($0).reason }
        #expect(reasons == ["sender account is paused (A7: work waits)", "sender account is paused (A7: work waits)"])
        try f.connection.execute("select set_account_status(\(sender), 'active')")
        try f.drain()
        #expect(try ids.map { try f.contact($0).status } == ["sent", "sent"])
    }

    @Test func aRunWhoseLeaseWasTakenChangesNothingWithWhatItLearnt_neitherARateLimitNorADelivery() throws {
        let f = try OutreachFixture {
            ScriptedCourier(pool: $0, script: ["in:limited": [.staleRun(.rateLimited(retryAfter: .seconds(1800)))], "in:late": [.staleRun(nil)]])
        }
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let (limited, late) = try f.contacts(campaign, ["limited", "late"]).pair
        try Campaigns.activate(campaign: campaign, on: f.connection)
        let outcomes = try f.drain()
        // Both stale runs failed on their lost lease; the jobs' new runs sent both, the same day.
        #expect(outcomes[Outreach.sendKind]?.filter { if case .failed(let error, _) = $0 { error.contains("no longer holds lease") } else { false } }.count == 2)
        #expect(try f.contact(limited).status == "sent")
        #expect(try f.contact(late).status == "sent")
        // The stale rate limit did not push the account's next send half an hour out, nor release anything.
        #expect(try f.count(
            "select count(*) from sender_accounts where id = \(sender) and next_send_at > clock_now() + interval '10 minutes'") == 0)
        #expect(try f.count("select count(*) from reservations where state = 'released'") == 0)
        #expect(try f.count("select count(*) from reservations where state = 'spent'") == 2)
        // The stale delivery was recorded by the new run, from the platform's first receipt: one message.
        let sandbox = try f.connection.queryOne("select requests, repeats from sandbox_messages where member_key = 'in:late'")
        #expect(try sandbox.decode(Int.self, "requests") == 2 && sandbox.decode(Int.self, "repeats") == 1)
        #expect(try f.count("select count(*) from messages where state = 'sent'") == 2)
    }

    @Test func idempotentDelivery_aRetryAfterALostAnswerGetsTheFirstReceiptAndNoSecondMessage() throws {
        let f = try OutreachFixture { ScriptedCourier(pool: $0, script: ["in:once": [.lostAnswer]]) }
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let id = try f.contacts(campaign, ["once"])[0]
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        try f.advance("2 minutes")  // the retry's backoff
        let message = try #require(try f.message(id))
        let sandbox = try f.connection.query("select requests, repeats, receipt from sandbox_messages where member_key = 'in:once'").rows
        #expect(sandbox.count == 1)
        #expect(try sandbox[0].decode(Int.self, "requests") == 2)
        #expect(try sandbox[0].decode(Int.self, "repeats") == 1)
        #expect(try sandbox[0].decode(String?.self, "receipt") == message.decode(String?.self, "receipt"))
        #expect(try f.count("select count(*) from reservations where state = 'spent'") == 1)
    }

    @Test func aReservationWhoseJobEndedWithoutSettlingItIsReleasedAndItsContactFailed() throws {
        let f = try OutreachFixture()
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let (lost, inFlight) = try f.contacts(campaign, ["lost", "in-flight"], set: SQL(unsafeText: "sender_account_id = \(sender)")).pair
        let balance = try f.accounts.balance(sender)
        // Two reservations whose jobs are gone: one never sent anything, one was mid-delivery.
        _ = try f.accounts.reserve(sender, key: "contact:\(lost):step:0").get()
        let flying = try f.accounts.reserve(sender, key: "contact:\(inFlight):step:0").get()
        try f.connection.execute(
            """
            insert into messages (contact_id, campaign_id, account_id, member_key, step, channel, uses_credit, delivery_key, body, reservation_id)
            values (\(inFlight), \(campaign), \(sender), 'in:in-flight', 0, 'inmail', true, \("contact:\(inFlight):step:0"), 'Hi', \(flying))
            """)
        #expect(try f.count("select release_orphaned_reservations()") == 0)  // too recent: its job may still be finishing
        try f.connection.execute("select clock_advance('11 minutes')")
        #expect(try f.count("select release_orphaned_reservations()") == 1)
        #expect(try f.contact(lost) == ("failed", "its send job ended without sending (see job_history)"))
        #expect(try f.accounts.balance(sender) == balance - 1)  // the in-flight one stays held: it may have gone out
        #expect(try f.count("select count(*) from reservations where state = 'held'") == 1)
    }

    @Test func responsesRecordNamesAnUnknownMessageOrKindAndChangesNothing() throws {
        let f = try OutreachFixture()
        let unknown = #expect(throws: PostgresError.self) { try f.connection.execute("select * from record_response(424242, 'reply')") }
        #expect(unknown?.message == "no message with id 424242")
        let sender = try f.sender()
        let campaign = try f.campaign(senders: [sender], followUpDelays: [])
        let id = try f.contacts(campaign, ["kind"])[0]
        try Campaigns.activate(campaign: campaign, on: f.connection)
        try f.drain()
        let message = try f.message(id)!.decode(Int64.self, "id")
        let badKind = #expect(throws: PostgresError.self) { try f.connection.execute("select * from record_response(\(message), 'thumbs_up')") }
        #expect(badKind?.message.hasPrefix("unknown response kind \"thumbs_up\" (use one of: accepted_default") == true)
        #expect(try f.count("select count(*) from responses") == 0)
        let cli = try InmailqProcess.run(["responses", "record", "--database-url", f.db.url, "--message", String(message), "--kind", "reply"])
        #expect(cli.status == 0)
        #expect(cli.output.contains("message \(message): reply recorded; contact is replied; 1 credit back (R1)"))
    }
}

extension Array {
    /// The first two elements, for tests that make two of something.
    var pair: (Element, Element) { (self[0], self[1]) }
}
