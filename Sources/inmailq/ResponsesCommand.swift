import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq responses record`: a response to a sent message, as a gateway's webhook reports it.
struct ResponsesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "responses", abstract: "Record responses to sent messages.", subcommands: [Record.self])

    struct Record: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record a response: credit back within 90 days (R1, R2) and the sequence rules (R3-R5).",
            discussion: """
                Kinds: accepted_default (follow-ups go on, R3), accepted_edited and reply (a responder; the \
                sequence stops, R4), declined (no follow-ups, R5), and the auto-replies interested, \
                maybe_later (acceptances) and not_interested (a decline). The same kind recorded twice for \
                a message counts once.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The message's id.") var message: Int64?
        @Option(help: "Or the message's delivery key (contact:<id>:step:<n>).") var deliveryKey: String?
        @Option(help: ArgumentHelp("The kind of response.", valueName: ResponseKind.allCases.map(\.rawValue).joined(separator: "|")))
        var kind: String
        @Option(help: "The response's text, if any.") var text: String?

        func validate() throws {
            guard (message == nil) != (deliveryKey == nil) else { throw ValidationError("give --message or --delivery-key (one of them)") }
            guard ResponseKind(rawValue: kind) != nil else {
                throw ValidationError("unknown --kind \(kind) (use one of: \(ResponseKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }

        func run() throws {
            let connection = try options.connect()
            let id: Int64
            if let message {
                id = message
            } else if let deliveryKey, let found = try Responses.message(deliveryKey: deliveryKey, on: connection) {
                id = found
            } else {
                throw CommandFailure("no sent message with delivery key \(deliveryKey ?? "")")
            }
            let recorded = try Responses.record(message: id, kind: ResponseKind(rawValue: kind)!, text: text, on: connection)
            if recorded.outcome == "duplicate" {
                print("message \(id): its response (\(kind)) was already recorded; nothing changed (contact is \(recorded.contactStatus))")
            } else {
                print("message \(id): \(kind) recorded; contact is \(recorded.contactStatus)"
                    + (recorded.creditedBack ? "; 1 credit back (R1)" : ""))
            }
        }
    }
}
