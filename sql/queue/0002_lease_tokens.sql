-- queue 0002: a token per claim. A lease was known by its owner's name alone, so a worker that
-- claimed its own rescued job again could be fooled by its older run, and a stale run could not
-- be told from the current one. Every claim now draws a new token; finishing, renewing and the
-- writes a job makes after delivery check it (queue_holds_lease).

create sequence jobs_lease_token_seq;

alter table jobs add column lease_token bigint;
update jobs set lease_token = nextval('jobs_lease_token_seq') where state = 'running';

alter table jobs drop constraint jobs_running_has_lease;
alter table jobs add constraint jobs_running_has_lease
    check ((state = 'running') = (lease_owner is not null and lease_expires_at is not null and lease_token is not null));
