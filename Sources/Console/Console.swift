import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Postgres

/// What the console is told.
public struct ConsoleSettings: Sendable {
    /// Mark cookies `Secure` (sent over HTTPS only). Off only when the console is reached
    /// over plain HTTP on the machine itself.
    public var secureCookies: Bool
    /// How long a session lasts after signing in.
    public var sessionLifetime: Duration = .seconds(12 * 3600)
    /// Seconds between refreshes of the live pages (the overview).
    public var refreshSeconds = 5

    public init(secureCookies: Bool) {
        self.secureCookies = secureCookies
    }
}

/// The operators' console: read-only HTML pages of one agency's queue, sender accounts and
/// campaigns, under `/console`.
///
///     GET  /console/login            the sign-in form
///     POST /console/login            sign in: a session cookie, then the overview
///     POST /console/logout           sign out (the form carries the session's CSRF token)
///     GET  /console                  overview: the agency's totals, queue, campaigns, senders
///                                    (?accounts_after= paging)
///     GET  /console/accounts/{id}    a sender account: limits today, credits, the ledger
///     GET  /console/campaigns/{id}   a campaign: funnel per step and sender, a chart per day
///     GET  /console/campaigns/{id}/people
///                                    its People (?status=, ?q=, ?after= paging)
///     GET  /console/jobs/{id}        a job with its attempts and errors
///
/// Every page's queries run in a transaction that has taken the agency's reader role
/// (`set local role`), so row-level security, not this code, keeps each agency to its own
/// rows: another agency's id is simply not found (404). Without a session: the sign-in form.
/// Forms are posted with a CSRF token, and a POST from another origin is refused.
public final class Console: Sendable {
    public static let root = "/console"
    static let sessionCookie = "inmailq_session"
    static let loginCookie = "inmailq_login_csrf"

    let settings: ConsoleSettings
    let pool: ConnectionPool
    let pages: ConsolePages
    let logger: Logger

    /// A console reading through sessions opened with `database` (the server's own login,
    /// which must be allowed to take the agencies' console roles: a worker's or the owner's).
    public init(database: ConnectionConfiguration, settings: ConsoleSettings, logger: Logger) throws {
        self.settings = settings
        var configuration = database
        configuration.applicationName = "inmailq-console"
        pool = ConnectionPool(configuration, capacity: 4)
        pages = try ConsolePages()
        self.logger = logger
    }

    /// Adds the console's routes to `router`.
    public func register(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(Self.root + "/login")) { request, _ in self.loginForm(request, failure: nil) }
        router.post(RouterPath(Self.root + "/login")) { request, _ in try await self.signIn(request) }
        router.post(RouterPath(Self.root + "/logout")) { request, _ in try await self.signOut(request) }
        router.get(RouterPath(Self.root)) { request, _ in
            let after = max(0, request.uri.queryParameters.get("accounts_after").flatMap { Int64($0) } ?? 0)
            return try await self.page(request) { connection, session in
                try self.pages.overview(session, accountsAfter: after, refresh: self.settings.refreshSeconds, on: connection)
            }
        }
        router.get(RouterPath(Self.root + "/accounts/:id")) { request, context in
            let id = try Self.id(context)
            return try await self.page(request) { connection, session in try self.pages.account(id, session, on: connection) }
        }
        router.get(RouterPath(Self.root + "/campaigns/:id")) { request, context in
            let id = try Self.id(context)
            return try await self.page(request) { connection, session in try self.pages.campaign(id, session, on: connection) }
        }
        router.get(RouterPath(Self.root + "/campaigns/:id/people")) { request, context in
            let id = try Self.id(context)
            let filter = PeopleFilter(query: request.uri.queryParameters)
            return try await self.page(request) { connection, session in try self.pages.people(id, filter, session, on: connection) }
        }
        router.get(RouterPath(Self.root + "/jobs/:id")) { request, context in
            let id = try Self.id(context)
            return try await self.page(request) { connection, session in try self.pages.job(id, session, on: connection) }
        }
    }

    static func id(_ context: BasicRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw HTTPError(.notFound)
        }
        return id
    }

    // Pages ---------------------------------------------------------------------------------

    /// Runs `build` for the request's session under its agency's role, or sends the browser to
    /// the sign-in form.
    private func page(_ request: Request, _ build: @escaping @Sendable (Connection, ConsoleLogins.Session) throws -> RenderedPage)
        async throws -> Response
    {
        guard let token = Self.cookie(Self.sessionCookie, in: request) else { return Self.redirect(to: Self.root + "/login") }
        let rendered: RenderedPage? = try await database { connection in
            try connection.transaction { connection in
                guard let session = try ConsoleLogins.session(token: token, on: connection) else { return nil }
                // As `set local role`, `set local statement_timeout` and `set local jit`, in one
                // round trip. No JIT: at agency scale a page's cost estimates pass its threshold,
                // and compiling took longer (160 ms) than running the query.
                try connection.execute("""
                    select set_config('role', \(session.role), true), set_config('statement_timeout', '10s', true),
                           set_config('jit', 'off', true)
                    """)
                return try build(connection, session)
            }
        }
        guard let rendered else { return Self.redirect(to: Self.root + "/login") }
        return html(rendered.status, rendered.html, headers: rendered.refresh.map { [.refresh: "\($0)"] } ?? [:])
    }

    /// Why the sign-in form is shown again.
    enum SignInFailure {
        case wrongPassword
        case throttled(until: String)
    }

    /// The sign-in form with a fresh CSRF cookie: 200, or 401 after a wrong password, or 429
    /// (with Retry-After) while the login is throttled.
    private func loginForm(_ request: Request, failure: SignInFailure?) -> Response {
        let csrf = ConsoleLogins.randomToken()
        var context: [String: Any] = ["csrf": csrf]
        var status = HTTPResponse.Status.ok
        var headers: HTTPFields = [:]
        switch failure {
        case nil: break
        case .wrongPassword:
            status = .unauthorized
            context["failed"] = true
        case .throttled(let until):
            status = .tooManyRequests
            context["throttled_until"] = until
            headers[.retryAfter] = "\(Int(ConsoleLogins.throttleWindow.components.seconds))"
        }
        var response = html(status, pages.render("login", context), headers: headers)
        response.setCookie(cookie(Self.loginCookie, csrf, maxAge: 3600))
        return response
    }

    private func signIn(_ request: Request) async throws -> Response {
        guard sameOrigin(request) else { return Self.forbidden("a form of another site") }
        let form = try await Self.form(request)
        // The sign-in form's token must come back in its cookie (double submit): another site
        // cannot sign a browser in under an account of its choosing.
        guard let given = form.csrf, let expected = Self.cookie(Self.loginCookie, in: request),
              Self.constantTimeEqual(given, expected)
        else { return Self.forbidden("the sign-in form expired: load it again") }
        let login = (form.login ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let password = form.password ?? ""
        let lifetime = settings.sessionLifetime
        let outcome = try await database { connection in
            try ConsoleLogins.signIn(login: login, password: password, lifetime: lifetime, on: connection)
        }
        let token: String
        switch outcome {
        case .signedIn(let signedIn):
            token = signedIn
        case .refused:
            logger.notice("console sign-in refused", metadata: ["login": "\(login)"])
            return loginForm(request, failure: .wrongPassword)
        case .throttled(let until):
            logger.warning("console sign-in throttled", metadata: ["login": "\(login)", "until": "\(until)"])
            return loginForm(request, failure: .throttled(until: until))
        }
        logger.info("console sign-in", metadata: ["login": "\(login)"])
        var response = Self.redirect(to: Self.root)
        response.setCookie(cookie(Self.sessionCookie, token, maxAge: Int(lifetime.components.seconds)))
        response.setCookie(cookie(Self.loginCookie, "", maxAge: 0))
        return response
    }

    private func signOut(_ request: Request) async throws -> Response {
        guard sameOrigin(request) else { return Self.forbidden("a form of another site") }
        guard let token = Self.cookie(Self.sessionCookie, in: request) else { return Self.redirect(to: Self.root + "/login") }
        let form = try await Self.form(request)
        let signedOut: Bool = try await database { connection in
            guard let session = try ConsoleLogins.session(token: token, on: connection) else { return true }
            guard let given = form.csrf, Self.constantTimeEqual(given, session.csrfToken) else { return false }
            try ConsoleLogins.signOut(token: token, on: connection)
            return true
        }
        guard signedOut else { return Self.forbidden("the form's token does not match the session") }
        var response = Self.redirect(to: Self.root + "/login")
        response.setCookie(cookie(Self.sessionCookie, "", maxAge: 0))
        return response
    }

    // HTTP helpers ----------------------------------------------------------------------------

    /// Runs `body` with a pooled session on a thread of its own (libpq blocks).
    private func database<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { answer in
            DispatchQueue.global().async {
                answer.resume(with: Result { try self.pool.withConnection(body) })
            }
        }
    }

    private func html(_ status: HTTPResponse.Status, _ text: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.cacheControl] = "no-store"
        // Pages embed no scripts and no other site's resources, and no other site may frame them.
        fields[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
        fields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        fields[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: Self.root, secure: settings.secureCookies, httpOnly: true, sameSite: .strict)
    }

    static func redirect(to path: String) -> Response {
        Response(status: .seeOther, headers: [.location: path, .cacheControl: "no-store"])
    }

    static func forbidden(_ reason: String) -> Response {
        Response(status: .forbidden, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: "refused: \(reason)\n")))
    }

    /// A POST must come from a page of this server: its Origin (or, lacking one, its Referer)
    /// names this host. Browsers send Origin with every POST.
    private func sameOrigin(_ request: Request) -> Bool {
        guard let host = request.head.authority else { return false }
        let source = request.headers[.origin] ?? request.headers[.referer]
        guard let source, let url = URL(string: source), let sourceHost = url.host else { return false }
        let port = url.port.map { ":\($0)" } ?? ""
        return sourceHost + port == host
    }

    /// The request's cookie `name`, unless missing or empty.
    static func cookie(_ name: String, in request: Request) -> String? {
        request.cookies[name].map(\.value).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The fields the console's forms post (each form some of them).
    struct Form: Decodable {
        var login: String?
        var password: String?
        var csrf: String?
    }

    /// An `application/x-www-form-urlencoded` body (at most 16 KiB), the fields it lacks nil.
    static func form(_ request: Request) async throws -> Form {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 10)
        // A malformed body is a form without fields: refused for its missing token.
        return (try? URLEncodedFormDecoder().decode(Form.self, from: String(buffer: body))) ?? Form()
    }

    /// Equal texts, compared in a time that depends only on `expected`'s length (secrets, tokens).
    public static func constantTimeEqual(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for index in 0..<b.count { difference |= b[index] ^ (index < a.count ? a[index] : 0) }
        return difference == 0
    }
}

/// A page ready to send.
struct RenderedPage: Sendable {
    var status: HTTPResponse.Status = .ok
    var html: String
    /// Seconds after which the browser loads the page again (a live page), or nil.
    var refresh: Int? = nil
}

extension HTTPField.Name {
    static let refresh = HTTPField.Name("Refresh")!
}
