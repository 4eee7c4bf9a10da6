import Foundation
import HummingbirdBcrypt
import Postgres

/// The console's logins and sessions (`console_logins`, `console_sessions`). Passwords are kept
/// as bcrypt hashes; a session is a random token whose SHA-256 alone is stored.
public enum ConsoleLogins {
    /// Why a login cannot be added.
    public struct Refusal: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The shortest password accepted.
    public static let minimumPasswordLength = 12
    /// bcrypt's work factor for new hashes (2^12 rounds: about a quarter of a second here).
    public static let bcryptCost: UInt8 = 12

    /// Adds `login` for `agency`, or gives an existing login of that agency a new password (its
    /// sessions end). Makes and maps the agency's console role (`console_agency_role`), so the
    /// connection must be the owner's or a superuser's. Refuses a malformed login, a short
    /// password, an unknown agency, and a login that already belongs to another agency.
    public static func add(login: String, agency: Int64, password: String, on connection: Connection) throws {
        guard login.range(of: #"^[a-z0-9][a-z0-9_.@-]{2,63}$"#, options: .regularExpression) != nil else {
            throw Refusal(description: "login \"\(login)\": use 3 to 64 characters: lower-case letters, digits, and _ . @ - (not first)")
        }
        guard password.count >= minimumPasswordLength else {
            throw Refusal(description: "the password for \(login) is too short: at least \(minimumPasswordLength) characters")
        }
        guard password.utf8.count <= 72 else {
            throw Refusal(description: "the password for \(login) is too long: bcrypt uses at most 72 bytes")
        }
        let hash = Bcrypt.hash(password, cost: bcryptCost)
        try connection.transaction { connection in
            guard try connection.query("select 1 from agencies where id = \(agency)").rowCount == 1 else {
                throw Refusal(description: "no agency with id \(agency)")
            }
            try connection.execute("select console_agency_role(\(agency))")
            // A login of another agency keeps its password: the conflict updates only a login of
            // this agency, so two operators adding the same name at once cannot take one over.
            let stored = try connection.execute("""
                insert into console_logins (login, agency_id, password_hash) values (\(login), \(agency), \(hash))
                on conflict (login) do update set password_hash = excluded.password_hash, failed_sign_ins = 0
                where console_logins.agency_id = excluded.agency_id
                """)
            if stored == 0 {
                let owner = try connection.queryOne("select agency_id from console_logins where login = \(login)").decode(Int64.self, "agency_id")
                throw Refusal(description: "login \(login) already belongs to agency \(owner)")
            }
            try connection.execute("delete from console_sessions where login = \(login)")
        }
    }

    /// A signed-in login: whose agency, which role reads its rows, and its CSRF token.
    struct Session: Sendable {
        let login: String
        let agencyID: Int64
        let role: String
        let csrfToken: String
    }

    /// A hash to verify against when the login is unknown, so an unknown login costs the same
    /// time as a wrong password.
    private static let decoyHash = Bcrypt.hash("not a password of anyone's", cost: bcryptCost)

    /// Failed sign-ins in a row a login may have before it is throttled.
    public static let allowedFailures = 5
    /// How long after its last failure a throttled login waits, and how close failures must
    /// follow each other to count as in a row.
    public static let throttleWindow: Duration = .seconds(15 * 60)

    /// What became of a sign-in.
    enum SignIn: Equatable {
        /// Signed in: the new session's token.
        case signedIn(token: String)
        /// Unknown login or wrong password.
        case refused
        /// Too many failures in a row: refused, the password unchecked, until `until`.
        case throttled(until: String)
    }

    /// Signs `login` in with `password`: a new session when it is the login's password and the
    /// login is not throttled. Counts failures (`allowedFailures`, `throttleWindow`); the login's
    /// row stays locked while its password is checked, so guesses sent at once are counted one
    /// after another. Deletes expired sessions.
    static func signIn(login: String, password: String, lifetime: Duration, on connection: Connection) throws -> SignIn {
        let window = Int(throttleWindow.components.seconds)
        return try connection.transaction { connection in
            let stored = try connection.query("""
                select password_hash,
                       case when failed_sign_ins >= \(allowedFailures)
                                 and last_failed_sign_in > now() - \(window) * interval '1 second'
                            then to_char((last_failed_sign_in + \(window) * interval '1 second') at time zone 'UTC', 'HH24:MI') || ' UTC'
                       end as throttled_until
                from console_logins where login = \(login) for update
                """).first
            if let until = try stored?.decode(String?.self, "throttled_until") { return .throttled(until: until) }
            let hash = try stored?.decode(String.self, "password_hash")
            guard Bcrypt.verify(password, hash: hash ?? decoyHash), hash != nil else {
                // A failure follows the last one in a row when it comes within the window.
                try connection.execute("""
                    update console_logins
                    set failed_sign_ins = case when last_failed_sign_in > now() - \(window) * interval '1 second'
                                               then failed_sign_ins + 1 else 1 end,
                        last_failed_sign_in = now()
                    where login = \(login)
                    """)
                return .refused
            }
            let token = randomToken()
            try connection.execute("""
                with expired as (delete from console_sessions where expires_at < now()),
                good as (update console_logins set failed_sign_ins = 0 where login = \(login) and failed_sign_ins > 0)
                insert into console_sessions (token_sha256, login, csrf_token, expires_at)
                values (sha256(convert_to(\(token), 'UTF8')), \(login), \(randomToken()),
                        now() + \(Int(lifetime.components.seconds)) * interval '1 second')
                """)
            return .signedIn(token: token)
        }
    }

    /// The unexpired session of `token`, or nil.
    static func session(token: String, on connection: Connection) throws -> Session? {
        guard let row = try connection.query("""
            select s.login, s.csrf_token, l.agency_id, console_role_name(l.agency_id) as role
            from console_sessions s join console_logins l on l.login = s.login
            where s.token_sha256 = sha256(convert_to(\(token), 'UTF8')) and s.expires_at > now()
            """).first else { return nil }
        return Session(login: try row.decode(String.self, "login"), agencyID: try row.decode(Int64.self, "agency_id"),
                       role: try row.decode(String.self, "role"), csrfToken: try row.decode(String.self, "csrf_token"))
    }

    static func signOut(token: String, on connection: Connection) throws {
        try connection.execute("delete from console_sessions where token_sha256 = sha256(convert_to(\(token), 'UTF8'))")
    }

    /// 32 random bytes from the system's generator, hex-encoded.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
