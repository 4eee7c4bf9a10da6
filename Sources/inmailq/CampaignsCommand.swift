import ArgumentParser
import Foundation
import InMail
import Postgres

/// `inmailq campaigns ...`: create campaigns, set their steps and senders, activate them.
struct CampaignsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaigns",
        abstract: "Create, activate, pause and end InMail campaigns.",
        subcommands: [Create.self, Step.self, AddSender.self, Activate.self, Pause.self, End.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a draft campaign, optionally copying a seed campaign's steps (C1).")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The client workspace.") var workspace: Int64
        @Option(help: "The campaign's name (unique in the workspace).") var name: String
        @Option(help: "A campaign of the same agency whose steps are copied.") var seed: Int64?

        func run() throws {
            print(try Campaigns.create(workspace: workspace, name: name, seed: seed, on: options.connect()))
        }
    }

    struct Step: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a step: 0 is the InMail (--subject and --body), 1-5 are follow-ups (--body, --delay-days 3-30).",
            discussion: "Templates take {{first_name}}, {{last_name}}, {{company}}, {{title}} and any custom field of the contacts, with a fallback: {{first_name|there}}.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @Option(help: "0 for the InMail, 1-5 for follow-ups.") var position: Int
        @Option(help: "The InMail's subject (step 0 only).") var subject: String?
        @Option(help: "The message text.") var body: String
        @Option(help: "Days after the previous step (follow-ups only, 3-30).") var delayDays: Int?

        func validate() throws {
            guard (0...5).contains(position) else { throw ValidationError("--position must be 0 (the InMail) to 5 (the fifth follow-up)") }
            if position == 0 {
                guard subject != nil, delayDays == nil else { throw ValidationError("step 0, the InMail, takes --subject and no --delay-days") }
            } else {
                guard subject == nil, let delayDays, (3...30).contains(delayDays) else {
                    throw ValidationError("a follow-up takes --delay-days between 3 and 30 (C3) and no --subject")
                }
            }
        }

        func run() throws {
            try Campaigns.setStep(campaign: campaign, position: position, subject: subject, body: body, delayDays: delayDays, on: options.connect())
        }
    }

    struct AddSender: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-sender", abstract: "Add sender accounts of the workspace to the campaign's pool.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The campaign.") var campaign: Int64
        @Argument(help: "Sender account ids.") var accounts: [Int64]

        func run() throws {
            let connection = try options.connect()
            try connection.transaction { connection in
                for account in accounts { try Campaigns.addSender(campaign: campaign, account: account, on: connection) }
            }
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every template and activate the campaign.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The campaign.") var campaign: Int64

        func run() throws {
            let queued: Int
            do {
                queued = try Campaigns.activate(campaign: campaign, on: options.connect())
            } catch let error as TemplateError {
                throw CommandFailure("campaign \(campaign) not activated: \(error)")
            }
            print("campaign \(campaign) is active; \(queued) contacts queued to send")
        }
    }

    struct End: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a campaign as completed or archived: nothing more is sent; responses still count.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The campaign.") var campaign: Int64
        @Option(name: .customLong("as"), help: "completed or archived.") var status: String = "completed"

        func run() throws {
            try Campaigns.end(campaign: campaign, as: status, on: options.connect())
            print("campaign \(campaign) is \(status)")
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause an active campaign: its sends wait until it is activated again.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The campaign.") var campaign: Int64

        func run() throws {
            try Campaigns.pause(campaign: campaign, on: options.connect())
            print("campaign \(campaign) is paused")
        }
    }
}
