-- Failed sign-ins, counted per login in the database so that every serve process shares the
-- count: after ConsoleLogins.allowedFailures failures, each less than the throttle's window
-- after the one before, the login's sign-ins are refused, its password unchecked, until the
-- window has passed since the last failure. A success, or a new password, starts it over.
alter table console_logins
    add column failed_sign_ins     integer not null default 0 check (failed_sign_ins >= 0),
    add column last_failed_sign_in timestamptz;
