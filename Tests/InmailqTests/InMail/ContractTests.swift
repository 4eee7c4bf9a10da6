import Foundation
import InMail
import Postgres
import Queue
import Testing

/// What Swift and the SQL agree on: enum labels, job args, and which layer touches the jobs table.
@Suite("Contracts between Swift and SQL")
struct ContractTests {
    func labels(_ type: String, _ connection: Connection) throws -> [String] {
        try connection.query(SQL(unsafeText: "select unnest(enum_range(null::\(type)))::text as label")).rows
            .map { try $0.decode(String.self, "label") }
    }

    @Test func everySwiftEnumHasExactlyTheLabelsOfItsSQLEnumInOrder() throws {
        let connection = try TestDatabase().connect()
        #expect(try labels("job_state", connection) == JobState.allCases.map(\.rawValue))
        #expect(try labels("account_status", connection) == AccountStatus.allCases.map(\.rawValue))
        #expect(try labels("reservation_state", connection) == ReservationState.allCases.map(\.rawValue))
        #expect(try labels("send_refusal", connection) == SendRefusal.allCases.map(\.rawValue))
        #expect(try labels("send_channel", connection) == SendRequest.Channel.allCases.map(\.rawValue))
        #expect(try labels("contact_status", connection) == ContactStatus.allCases.map(\.rawValue))
        #expect(try labels("campaign_status", connection) == CampaignStatus.allCases.map(\.rawValue))
        #expect(try labels("message_state", connection) == MessageState.allCases.map(\.rawValue))
    }

    @Test func sendJobArgsWrittenBySQLDecodeInSwiftAndSwiftWritesTheSameJSON() throws {
        let connection = try TestDatabase().connect()
        for (channel, credit) in [("inmail", true), ("inmail", false), ("message", true)] {
            let row = try connection.queryOne(
                "select send_job_args(7, 2, 3, \(channel)::send_channel, \(credit))::text as args")
            let decoded = try JSONText(try row.decode(String.self, "args")).decode(Outreach.Args.self)
            let expected = Outreach.Args(
                contactID: 7, step: 2,
                request: SendRequest(accountID: 3, deliveryKey: "contact:7:step:2", channel: .init(rawValue: channel)!, usesCredit: credit))
            #expect(decoded == expected)
            #expect(decoded.request.usesCredit == (credit && channel == "inmail"))  // a message never uses a credit (S3)
            let same = try connection.queryOne(
                "select \(try JSONText(encoding: expected))::jsonb = send_job_args(7, 2, 3, \(channel)::send_channel, \(credit)) as same")
            #expect(try same.decode(Bool.self, "same"))
        }
    }

    @Test func noSQLOutsideTheQueueNamesTheJobsTable() throws {
        // The queue's table belongs to the queue: sql/queue and Sources/Queue only. Everything
        // else goes through queue_enqueue, queue_defer, queue_wake, queue_job, queue_jobs_in and
        // the Queue module.
        let pattern = try Regex(#"(?i)\b(from|into|update|join)\s+(public\.)?jobs\b"#)
        var offenders: [String] = []
        for top in ["sql", "Sources"] {
            let base = TestPaths.root + "/" + top
            let files = FileManager.default.enumerator(atPath: base)?.compactMap { $0 as? String } ?? []
            #expect(files.count > 10, "found no files under \(base)")
            for file in files where file.hasSuffix(".sql") || file.hasSuffix(".swift") {
                let path = top + "/" + file
                if path.hasPrefix("sql/queue/") || path.hasPrefix("Sources/Queue/") { continue }
                let text = try String(contentsOfFile: TestPaths.root + "/" + path, encoding: .utf8)
                if text.contains(pattern) { offenders.append(path) }
            }
        }
        #expect(offenders.isEmpty, "these name the jobs table outside the queue: \(offenders)")
    }
}
