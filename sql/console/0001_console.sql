-- console: who may log in to the operators' web console (inmailq serve, /console), and their
-- sessions. A login sees one agency, through that agency's reader role (sql/access): the
-- console's queries run under the agency's row-level security, not under the server's rights.

create table console_logins (
    login         text primary key check (login ~ '^[a-z0-9][a-z0-9_.@-]{2,63}$'),
    agency_id     bigint not null references agencies on delete cascade,
    -- bcrypt ($2b$, cost 12 by default), made by `inmailq console add-login`; never the password.
    password_hash text not null check (password_hash ~ '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
    created_at    timestamptz not null default now()
);
create index console_logins_agency_idx on console_logins (agency_id);

-- A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so a copy
-- of this table opens no session. Each session has its own CSRF token for the forms it posts.
create table console_sessions (
    token_sha256 bytea primary key check (length(token_sha256) = 32),
    login        text not null references console_logins on delete cascade,
    csrf_token   text not null check (length(csrf_token) >= 32),
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null
);
create index console_sessions_login_idx on console_sessions (login);
-- Expired sessions are deleted by whoever signs in next (console_sign_in).
create index console_sessions_expiry_idx on console_sessions (expires_at);
