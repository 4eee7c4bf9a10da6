-- Teach inmailq one of LinkedIn's canned InMail answers as your accounts' language writes it: a
-- member message reading exactly this (case, spacing and trailing punctuation aside) is recorded
-- as that response kind instead of a free-text reply (R2, R3, R5).
-- Usage: psql "$DATABASE_URL" -v phrase="Yes, I'm interested" -v kind=interested -f sql/admin/set_reply_phrase.sql
--        kinds: select * from response_kinds;   the phrases known: select * from reply_phrases;
-- An unknown kind stops with an error and changes nothing; a known phrase gets the new kind.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?phrase}
\else
do $$ begin raise exception 'missing -v phrase=...: see the usage line at the top of set_reply_phrase.sql'; end $$;
\endif
\if :{?kind}
\else
do $$ begin raise exception 'missing -v kind=...: see the usage line at the top of set_reply_phrase.sql'; end $$;
\endif
\set QUIET off
insert into reply_phrases (phrase, kind) values (inbox_phrase(:'phrase'), :'kind')
on conflict (phrase) do update set kind = excluded.kind
returning phrase, kind;
