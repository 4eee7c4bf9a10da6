import ArgumentParser
import Console
import Foundation
import Postgres

/// `inmailq console`: who may sign in to the operators' console of `inmailq serve`.
struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Manage the logins of the operators' web console (served by `inmailq serve` under /console).",
        discussion: """
            Each login sees one agency: its queue, sender accounts and campaigns, read under that \
            agency's row-level security. Passwords are stored as bcrypt hashes.
            """,
        subcommands: [AddLogin.self])

    struct AddLogin: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-login",
            abstract: "Add a console login for an agency, or give an existing one a new password.",
            discussion: """
                The password is read from INMAILQ_CONSOLE_PASSWORD, else from --password-file (its \
                first line), else one is made up and printed once. At least \(ConsoleLogins.minimumPasswordLength) \
                characters. A new password ends the login's sessions and lifts a sign-in throttle. Run it as the database's owner \
                (it makes the agency's reader role on first use).
                """)

        @OptionGroup var options: GlobalOptions

        @Option(help: "The agency the login sees.")
        var agency: Int64

        @Option(help: ArgumentHelp("The login's name (lower case).", valueName: "name"))
        var login: String

        @Option(help: ArgumentHelp("A file holding the password (instead of INMAILQ_CONSOLE_PASSWORD).", valueName: "path"))
        var passwordFile: String?

        func run() throws {
            var password = ProcessInfo.processInfo.environment["INMAILQ_CONSOLE_PASSWORD"]
            if password == nil, let passwordFile {
                guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                    throw CommandFailure("cannot read the password file \(passwordFile)")
                }
                password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            }
            let made = password == nil
            let chosen = password ?? String(ConsoleLogins.randomToken().prefix(20))
            do {
                try ConsoleLogins.add(login: login, agency: agency, password: chosen, on: options.connect())
            } catch let refusal as ConsoleLogins.Refusal {
                throw CommandFailure(refusal.description)
            }
            print(made ? "login \(login) for agency \(agency), password: \(chosen)" : "login \(login) for agency \(agency)")
        }
    }
}
