import Foundation
import Postgres
import Queue

/// A simulated LinkedIn, deterministic from a seed: members with opt-outs and unreachable
/// profiles, transient failures and rate limits, and responses (acceptances, declines, edited
/// acceptances, replies, auto-replies) that arrive after realistic delays.
public struct SandboxWorld: Sendable {
    public var seed: Int64
    /// Share of members who opted out of InMail since they were imported (S2).
    public var optOutRate = 0.03
    /// Share of members who cannot receive InMail at all.
    public var unreachableRate = 0.01
    /// Share of first requests for a key that fail for a passing reason.
    public var transientFailureRate = 0.03
    /// Share of first and second requests for a key answered "too many requests".
    public var rateLimitRate = 0.02
    /// How an InMail is answered: each kind with its share; the rest never answer.
    public var inmailResponses: [(ResponseKind, Double)] = [
        (.acceptedDefault, 0.12), (.interested, 0.03), (.maybeLater, 0.02), (.acceptedEdited, 0.05),
        (.reply, 0.04), (.declined, 0.08), (.notInterested, 0.03),
    ]
    /// Share of regular messages (follow-ups, 1st-degree messages) that get a reply.
    public var messageReplyRate = 0.10
    /// Responses arrive between these many hours after delivery.
    public var responseDelayHours: ClosedRange<Double> = 1...120

    public init(seed: Int64) { self.seed = seed }

    /// A platform where every delivery succeeds at once and nobody answers (benchmarks).
    public static let perfect: SandboxWorld = {
        var world = SandboxWorld(seed: 0)
        world.optOutRate = 0
        world.unreachableRate = 0
        world.transientFailureRate = 0
        world.rateLimitRate = 0
        world.inmailResponses = []
        world.messageReplyRate = 0
        return world
    }()

    /// A number in [0, 1) that depends only on the seed and the parts.
    func uniform(_ parts: String...) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(bitPattern: seed)
        for byte in parts.joined(separator: "\u{1F}").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return Double(hash >> 11) / Double(1 << 53)
    }

    public func optedOut(_ member: String) -> Bool { uniform("opt-out", member) < optOutRate }
    public func unreachable(_ member: String) -> Bool { uniform("unreachable", member) < unreachableRate }

    /// The response a delivered message will get, and how long after delivery; nil for none.
    public func response(to key: String, channel: SendRequest.Channel) -> (kind: ResponseKind, text: String?, after: Duration)? {
        let draw = uniform("response", key)
        var kind: ResponseKind?
        switch channel {
        case .inmail:
            var cumulative = 0.0
            for (candidate, share) in inmailResponses {
                cumulative += share
                if draw < cumulative { kind = candidate; break }
            }
        case .message:
            if draw < messageReplyRate { kind = .reply }
        }
        guard let kind else { return nil }
        let hours = responseDelayHours.lowerBound
            + uniform("delay", key) * (responseDelayHours.upperBound - responseDelayHours.lowerBound)
        let texts = ["Thanks, happy to talk next week.", "Not the right person, but try our COO.", "Send me more details, please."]
        let text = kind == .reply || kind == .acceptedEdited ? texts[Int(uniform("text", key) * Double(texts.count))] : nil
        return (kind, text, .seconds(hours * 3600))
    }
}

/// The courier of the demo, the tests and the benchmarks: delivers into the sandbox tables of
/// the database (shared by every worker process), detects repeated delivery keys, and sends the
/// world's responses back as `sandbox.respond` jobs that record them exactly as a real response
/// is recorded (`Responses.record`).
public final class SandboxCourier: Courier {
    /// The job kind that brings a simulated response back.
    public static let respondKind = "sandbox.respond"

    private let pool: ConnectionPool
    private let world: (@Sendable (Int64) -> SandboxWorld)

    /// A courier delivering into the sandbox tables of the pool's database, with a session of
    /// the pool per call (share the worker's: its handlers hand theirs back while a courier
    /// works); `world` builds the simulated world from the seed stored in `sandbox_settings`.
    public init(pool: ConnectionPool, world: @escaping @Sendable (Int64) -> SandboxWorld = { SandboxWorld(seed: $0) }) {
        self.pool = pool
        self.world = world
    }

    private enum Answer {
        case delivered(Receipt)
        case refused(CourierError)
    }

    /// Deliveries go in batches: a batch costs the sandbox's database a few statements in all,
    /// and each of the send path's statements serves as many jobs (64 ran 10-15% faster than 32).
    public var batchSize: Int { 64 }

    public func deliver(_ delivery: Delivery) throws(CourierError) -> Receipt {
        try deliver([delivery])[0].get()
    }

    public func deliver(_ deliveries: [Delivery]) -> [Result<Receipt, CourierError>] {
        guard !deliveries.isEmpty else { return [] }
        let answers: [Answer]
        let latency: Int
        do {
            (answers, latency) = try pool.withConnection { try self.answer(deliveries, on: $0) }
        } catch {
            return deliveries.map { _ in .failure(.retryLater(reason: "sandbox database: \(error)")) }
        }
        if latency > 0 { Thread.sleep(forTimeInterval: Double(latency) / 1000) }  // the requests of a batch travel together
        return answers.map { answer in
            switch answer {
            case .delivered(let receipt): .success(receipt)
            case .refused(let error): .failure(error)
            }
        }
    }

    /// Each statement commits on its own: a request dying between them left a counted request
    /// without a receipt, which the next request with the key delivers. The simulated platform's
    /// commits do not wait for the WAL flush (set per statement: the session is the pool's): a
    /// crash of the server may forget its last deliveries, as a crash of LinkedIn would not; the
    /// simulation accepts that for speed.
    private func answer(_ deliveries: [Delivery], on connection: Connection) throws -> ([Answer], Int) {
        let rows = try connection.query(
            """
            with quick as (
                select set_config('synchronous_commit', 'off', true)
            ), request as (
                insert into sandbox_messages as m (delivery_key, account_id, member_key, channel, subject, body)
                select * from unnest(\(deliveries.map(\.key))::text[], \(deliveries.map(\.accountID))::bigint[],
                                     \(deliveries.map(\.memberKey))::text[], \(deliveries.map(\.channel.rawValue))::text[],
                                     \(deliveries.map(\.subject))::text[], \(deliveries.map(\.body))::text[])
                on conflict (delivery_key) do update
                set requests = m.requests + 1, repeats = m.repeats + (m.receipt is not null)::int
                returning m.delivery_key, m.account_id, m.requests, m.receipt
            )
            select request.delivery_key, request.requests, request.receipt, s.seed, s.latency_ms, s.perfect,
                   request.account_id = any(s.restricted_accounts) as restricted
            from request, sandbox_settings s, quick
            """, prepared: true).rows
        var requests: [String: Row] = [:]
        for row in rows { requests[try row.decode(String.self, "delivery_key")] = row }
        guard let settings = rows.first else { return ([], 0) }
        let latency = try settings.decode(Int.self, "latency_ms")
        let world = try settings.decode(Bool.self, "perfect") ? SandboxWorld.perfect : self.world(try settings.decode(Int64.self, "seed"))
        var answers: [Answer] = []
        var delivered: [(delivery: Delivery, receipt: String)] = []
        for delivery in deliveries {
            let row = requests[delivery.key]!
            let (request, restricted) = (try row.decode(Int.self, "requests"), try row.decode(Bool.self, "restricted"))
            if let receipt = try row.decode(String?.self, "receipt") {
                answers.append(.delivered(Receipt(id: receipt, repeated: true)))
            } else if let refusal = refusal(of: delivery, request: request, restricted: restricted, in: world) {
                answers.append(.refused(refusal))
            } else {
                let receipt = "sbx-\(String(UInt64(world.uniform("receipt", delivery.key) * Double(1 << 53)), radix: 16))-\(delivery.key)"
                delivered.append((delivery, receipt))
                answers.append(.delivered(Receipt(id: receipt, repeated: false)))
            }
        }
        guard !delivered.isEmpty else { return (answers, latency) }
        let deliveredAt = try connection.queryOne(
            """
            with quick as (
                select set_config('synchronous_commit', 'off', true)
            ), receipt as (
                update sandbox_messages m set receipt = d.receipt, delivered_at = (select clock_now())  -- read once, not per row
                from unnest(\(delivered.map(\.delivery.key))::text[], \(delivered.map(\.receipt))::text[]) as d(delivery_key, receipt)
                where m.delivery_key = d.delivery_key
            )
            select clock_now() as delivered_at from quick
            """).decode(Date.self, "delivered_at")  // planned for the table as it is now, not as it was
        let responses = try delivered.compactMap { delivery, _ -> NewJob? in
            guard let response = world.response(to: delivery.key, channel: delivery.channel) else { return nil }
            let args = try JSONText(encoding: SandboxResponse(delivery_key: delivery.key, kind: response.kind.rawValue, text: response.text))
            return NewJob(kind: Self.respondKind, args: args, runAt: deliveredAt.addingTimeInterval(response.after.seconds), maxAttempts: 50)
        }
        if !responses.isEmpty { try JobQueue.enqueue(responses, on: connection) }
        return (answers, latency)
    }

    /// Why the simulated platform refuses the `request`-th request for a delivery, if it does.
    private func refusal(of delivery: Delivery, request: Int, restricted: Bool, in world: SandboxWorld) -> CourierError? {
        if restricted { return .accountProblem(reason: "sandbox: account \(delivery.accountID) is restricted") }
        if delivery.channel == .inmail && world.optedOut(delivery.memberKey) { return .optedOut }
        if delivery.channel == .inmail && world.unreachable(delivery.memberKey) {
            return .recipientUnreachable(reason: "sandbox: \(delivery.memberKey) does not accept InMail")
        }
        if request == 1 && world.uniform("transient", delivery.key) < world.transientFailureRate {
            return .retryLater(reason: "sandbox: gateway timeout")
        }
        if request <= 2 && world.uniform("rate-limit", delivery.key, String(request)) < world.rateLimitRate {
            return .rateLimited(retryAfter: .seconds(15 * 60))
        }
        return nil
    }

    /// Search results that depend only on the URL: 40 to 200 people, 25 a page, some with
    /// open profiles; Sales Navigator searches list lead links.
    public func search(_ url: String, cursor: String?) throws(CourierError) -> SearchPage {
        let settings: (seed: Int64, latency: Int)
        do {
            settings = try pool.withConnection { connection in
                let row = try connection.queryOne("select seed, latency_ms from sandbox_settings", prepared: true)
                return (try row.decode(Int64.self, "seed"), try row.decode(Int.self, "latency_ms"))
            }
        } catch {
            throw .retryLater(reason: "sandbox database: \(error)")
        }
        if settings.latency > 0 { Thread.sleep(forTimeInterval: Double(settings.latency) / 1000) }
        let world = world(settings.seed)
        let total = 40 + Int(world.uniform("search-total", url) * 161)
        let pageSize = 25
        let page = cursor.map { Int($0.dropFirst("page:".count)) ?? -1 } ?? 0
        guard page >= 0, page * pageSize <= total else {
            throw .recipientUnreachable(reason: "sandbox: unknown search cursor \(cursor ?? "")")
        }
        let salesNavigator = url.lowercased().contains("/sales/")
        let tag = String(UInt64(world.uniform("search-tag", url) * Double(1 << 40)), radix: 36)
        let firstNames = ["Ana", "Ben", "Chen", "Dara", "Eko", "Femi", "Gita", "Hugo", "Iris", "Jon", "Kai", "Lea"]
        let lastNames = ["Ito", "Khan", "Lopez", "Meyer", "Novak", "Okafor", "Park", "Quinn", "Rossi", "Silva"]
        let companies = ["Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises", "Acme Corp"]
        let people = (page * pageSize..<min(total, (page + 1) * pageSize)).map { n in
            let link = salesNavigator
                ? "https://www.linkedin.com/sales/lead/ACwAA\(tag)x\(n),NAME_SEARCH,\(n)"
                : "https://www.linkedin.com/in/\(tag)-person-\(n)/"
            let details = ContactDetails(
                firstName: firstNames[n % firstNames.count], lastName: lastNames[(n / 3) % lastNames.count],
                company: companies[(n * 7) % companies.count], title: ["CTO", "VP Engineering", "Head of Talent"][n % 3],
                openProfile: world.uniform("search-open", url, String(n)) < 0.15)
            return SearchPerson(profileURL: link, details: details)
        }
        return SearchPage(people: people, nextCursor: (page + 1) * pageSize < total ? "page:\(page + 1)" : nil)
    }

    struct SandboxResponse: Codable {
        let delivery_key: String
        let kind: String
        let text: String?
    }

    /// `sandbox.respond`: records the simulated response to the message delivered under the
    /// key, through the same function as a real response. Waits while that message is not yet
    /// recorded as sent (its worker may still be finishing it).
    public static let respondHandler: JobHandler = { job, context in
        let args = try job.args.decode(SandboxResponse.self)
        guard let kind = ResponseKind(rawValue: args.kind) else { return .cancelled(reason: "unknown response kind \(args.kind)") }
        let connection = try context.connection()
        guard let message = try Responses.message(deliveryKey: args.delivery_key, on: connection) else {
            return .snoozed(delay: .seconds(600))
        }
        let recorded = try Responses.record(message: message, kind: kind, text: args.text, on: connection)
        context.logger.debug("sandbox response", metadata: [
            "delivery_key": "\(args.delivery_key)", "kind": "\(kind.rawValue)", "outcome": "\(recorded.outcome)",
        ])
        return .completed
    }
}
