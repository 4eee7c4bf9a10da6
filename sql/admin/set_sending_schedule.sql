-- Set when and how fast an account sends: working days and hours (in its time zone), the random
-- spacing between sends, its daily limits (S6). Give only what changes.
-- Usage: psql "$DATABASE_URL" -v account=7 [-v days='{1,2,3,4,5}'] [-v start=08:30] [-v end=17:00]
--        [-v min_spacing='2 minutes'] [-v max_spacing='8 minutes'] [-v inmails=10] [-v messages=25]
--        [-v tz=Europe/Paris] -f sql/admin/set_sending_schedule.sql
-- A bad id or a bad value stops with an error naming it and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of set_sending_schedule.sql'; end $$;
\endif
\if :{?days} \else \set days '' \endif
\if :{?start} \else \set start '' \endif
\if :{?end} \else \set end '' \endif
\if :{?min_spacing} \else \set min_spacing '' \endif
\if :{?max_spacing} \else \set max_spacing '' \endif
\if :{?inmails} \else \set inmails '' \endif
\if :{?messages} \else \set messages '' \endif
\if :{?tz} \else \set tz '' \endif
\set QUIET off
select admin_set_sending_schedule(:'account'::bigint,
    nullif(:'days', '')::smallint[], nullif(:'start', '')::time, nullif(:'end', '')::time,
    nullif(:'min_spacing', '')::interval, nullif(:'max_spacing', '')::interval,
    nullif(:'inmails', '')::integer, nullif(:'messages', '')::integer, nullif(:'tz', '')) as schedule;
