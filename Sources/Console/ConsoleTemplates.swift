/// The console's Mustache templates. `{{x}}` is HTML-escaped; `{{{x}}}` is used only for the
/// SVG charts the server drew itself. Every page starts with `top` and ends with `bottom`.
enum ConsoleTemplates {
    static let all: [String: String] = [
        "top": top, "bottom": bottom, "pager": pager, "login": login, "overview": overview, "account": account, "campaign": campaign,
        "people": people, "job": job, "not_found": notFound,
    ]

    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
        header{background:#1f2937;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
        header a{color:#fff;text-decoration:none}header .agency{font-weight:600}header form{margin-left:auto}
        main{padding:16px;max-width:1200px}h1{font-size:20px}h2{font-size:16px;margin-top:24px}
        table{border-collapse:collapse;background:#fff;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}
        th{background:#eef0f3}td.n{text-align:right}.muted{color:#666}.bad{color:#b00}
        .tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{background:#fff;border:1px solid #ddd;padding:8px 12px;min-width:110px}
        .tile b{display:block;font-size:20px}svg{background:#fff;border:1px solid #ddd}
        """

    static let top = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>{{title}} · {{agency}} · inmailq</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>\(style)</style></head>
        <body><header><a class="agency" href="/console">{{agency}}</a><a href="/console">Overview</a>
        <span class="muted">{{now}}</span>
        <form method="post" action="/console/logout"><input type="hidden" name="csrf" value="{{csrf}}">
        <span>{{login}}</span> <button type="submit">Sign out</button></form></header><main>
        """

    static let bottom = """
        </main></body></html>
        """

    /// Links to the first and the next page of a list paged by id: `pager` holds `noun` and the
    /// links `first` and `next`, each when there is one.
    static let pager = """
        {{#pager}}<p>{{#first}}<a href="{{first}}">First {{noun}}</a> {{/first}}{{#next}}<a id="next-{{noun}}" href="{{next}}">Next {{noun}}</a>{{/next}}</p>{{/pager}}
        """

    static let login = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Sign in · inmailq</title><style>\(style)</style></head>
        <body><header><span class="agency">inmailq console</span></header><main>
        <h1>Sign in</h1>
        {{#failed}}<p class="bad" id="failed">Wrong login or password.</p>{{/failed}}
        {{#throttled_until}}<p class="bad" id="throttled">Too many failed sign-ins for this login: try again after {{throttled_until}}.</p>{{/throttled_until}}
        <form method="post" action="/console/login">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <p><label>Login <input name="login" autocomplete="username" required></label></p>
        <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
        <p><button type="submit">Sign in</button></p>
        </form></main></body></html>
        """

    static let overview = """
        {{> top}}
        <h1>Overview</h1>
        {{#totals}}
        <div class="tiles" id="totals">
        <div class="tile">contacts<b>{{contacts}}</b></div><div class="tile">InMails sent<b>{{inmails_sent}}</b></div>
        <div class="tile">accepted<b>{{accepted}}</b></div><div class="tile">declined<b>{{declined}}</b></div>
        <div class="tile">responders<b>{{responders}}</b></div><div class="tile">response rate<b>{{response_rate_pct}}%</b></div>
        <div class="tile">credits spent<b>{{credits_spent}}</b></div><div class="tile">credits back<b>{{credits_back}}</b></div>
        <div class="tile">waiting<b>{{waiting}}</b></div><div class="tile">failed<b>{{failed}}</b></div>
        </div>
        {{/totals}}
        <h2>Queue</h2>
        <p>Oldest available job waits: <b id="oldest">{{oldest}}</b></p>
        <table id="queue"><tr><th>kind</th><th>state</th><th>jobs</th></tr>
        {{#queue}}<tr><td>{{kind}}</td><td>{{state}}</td><td class="n">{{jobs}}</td></tr>{{/queue}}
        {{^queue}}<tr><td colspan="3" class="muted">no jobs in the last hour</td></tr>{{/queue}}
        </table>
        <figure>{{{throughput_chart}}}</figure>
        <h2>Latest errors</h2>
        <table id="errors"><tr><th>job</th><th>kind</th><th>attempt</th><th>at (UTC)</th><th>error</th></tr>
        {{#errors}}<tr><td><a href="/console/jobs/{{id}}">{{id}}</a></td><td>{{kind}}</td><td class="n">{{attempt}}</td><td>{{at}}</td><td>{{error}}</td></tr>{{/errors}}
        {{^errors}}<tr><td colspan="5" class="muted">none in the last day</td></tr>{{/errors}}
        </table>
        <h2>Campaigns</h2>
        <table id="campaigns"><tr><th>campaign</th><th>client</th><th>status</th><th>contacts</th><th>InMails sent</th><th>responders</th><th>response rate</th><th>credits spent</th><th>waiting</th></tr>
        {{#campaigns}}<tr><td><a href="/console/campaigns/{{campaign_id}}">{{campaign}}</a></td><td>{{workspace}}</td><td>{{status}}</td>
        <td class="n">{{contacts}}</td><td class="n">{{inmails_sent}}</td><td class="n">{{responders}}</td><td class="n">{{response_rate_pct}}%</td>
        <td class="n">{{credits_spent}}</td><td class="n">{{waiting}}</td></tr>{{/campaigns}}
        </table>
        <h2>Sender accounts</h2>
        <table id="accounts"><tr><th>account</th><th>plan</th><th>status</th><th>InMails today</th><th>credits</th><th>InMails sent</th><th>contacts waiting</th></tr>
        {{#accounts}}<tr><td><a href="/console/accounts/{{account_id}}">{{display_name}}</a></td><td>{{plan}}</td><td>{{status}}</td>
        <td class="n">{{inmails_today}} / {{daily_inmail_limit}}</td><td class="n">{{credit_balance}} / {{credit_cap}}</td>
        <td class="n">{{inmails_sent}}</td><td class="n">{{contacts_waiting}}</td></tr>{{/accounts}}
        </table>
        {{> pager}}
        {{> bottom}}
        """

    static let account = """
        {{> top}}
        {{#account}}
        <h1>{{display_name}}</h1>
        <p class="muted">sender account {{id}} · {{workspace}} · {{plan}} · {{time_zone}}</p>
        <table id="account">
        <tr><th>status</th><td>{{status}} {{status_reason}}</td></tr>
        <tr><th>today ({{local_day}}, {{local_time}} local)</th><td>{{inmails_today}} of {{daily_inmail_limit}} InMails, {{messages_today}} of {{daily_message_limit}} messages (S6)</td></tr>
        <tr><th>next possible send</th><td id="next-send">{{next_send}}</td></tr>
        <tr><th>credits</th><td>{{credit_balance}} spendable, {{credit_held}} reserved, cap {{credit_cap}} (A5), reserve {{credit_reserve}} kept (S7)</td></tr>
        <tr><th>next renewal</th><td>{{next_renewal}}: up to {{monthly_allotment}} credits (A2, A3)</td></tr>
        </table>
        {{/account}}
        <h2>Credits by expiry</h2>
        <table id="expiring"><tr><th>source</th><th>remaining</th><th>expires</th><th></th></tr>
        {{#expiring}}<tr><td>{{source}}</td><td class="n">{{remaining}}</td><td>{{expires_on}}</td><td class="bad">{{soon}}</td></tr>{{/expiring}}
        {{^expiring}}<tr><td colspan="4" class="muted">no credits</td></tr>{{/expiring}}
        </table>
        <h2>Ledger (newest 100 entries)</h2>
        <table id="ledger"><tr><th>#</th><th>at (UTC)</th><th>entry</th><th>credits</th><th>balance after</th><th>note</th></tr>
        {{#ledger}}<tr><td class="n">{{id}}</td><td>{{at}}</td><td>{{entry}}</td><td class="n">{{amount}}</td><td class="n">{{balance}}</td><td>{{note}}</td></tr>{{/ledger}}
        </table>
        {{> bottom}}
        """

    static let campaign = """
        {{> top}}
        {{#campaign}}
        <h1>{{campaign}}</h1>
        <p class="muted">campaign {{campaign_id}} · {{workspace}} · {{status}}</p>
        <div class="tiles" id="funnel">
        <div class="tile">contacts<b>{{contacts}}</b></div><div class="tile">InMails sent<b>{{inmails_sent}}</b></div>
        <div class="tile">messages (1st degree)<b>{{connection_messages}}</b></div>
        <div class="tile">accepted<b>{{accepted}}</b></div><div class="tile">declined<b>{{declined}}</b></div>
        <div class="tile">replied<b>{{responders}}</b></div><div class="tile">response rate<b>{{response_rate_pct}}%</b></div>
        <div class="tile">follow-ups<b>{{follow_ups_sent}}</b></div>
        <div class="tile">credits spent<b>{{credits_spent}}</b></div><div class="tile">credits back<b>{{credits_back}}</b></div>
        <div class="tile">waiting<b>{{waiting}}</b></div><div class="tile">in sequence<b>{{in_sequence}}</b></div>
        <div class="tile">finished<b>{{finished}}</b></div><div class="tile">skipped<b>{{skipped}}</b></div><div class="tile">failed<b>{{failed}}</b></div>
        </div>
        {{/campaign}}
        <figure>{{{daily_chart}}}</figure>
        <h2>Per step</h2>
        <table id="steps"><tr><th>step</th><th>sent</th><th>accepted</th><th>declined</th><th>replied</th><th>response rate</th><th>credits spent</th><th>credits back</th></tr>
        {{#steps}}<tr><td>{{step}}</td><td class="n">{{sent}}</td><td class="n">{{accepted}}</td><td class="n">{{declined}}</td><td class="n">{{replied}}</td>
        <td class="n">{{response_rate_pct}}%</td><td class="n">{{credits_spent}}</td><td class="n">{{credits_back}}</td></tr>{{/steps}}
        </table>
        <h2>Per sender</h2>
        <table id="senders"><tr><th>sender</th><th>InMails</th><th>messages</th><th>accepted</th><th>declined</th><th>replied</th><th>follow-ups</th><th>credits spent</th><th>credits back</th></tr>
        {{#senders}}<tr><td><a href="/console/accounts/{{account_id}}">{{display_name}}</a></td><td class="n">{{inmails_sent}}</td><td class="n">{{connection_messages}}</td>
        <td class="n">{{accepted}}</td><td class="n">{{declined}}</td><td class="n">{{responders}}</td><td class="n">{{follow_ups_sent}}</td>
        <td class="n">{{credits_spent}}</td><td class="n">{{credits_back}}</td></tr>{{/senders}}
        </table>
        {{#campaign}}<p><a id="people-link" href="/console/campaigns/{{campaign_id}}/people">People: each of the {{contacts}} contacts, where it stands and why</a></p>{{/campaign}}
        {{> bottom}}
        """

    static let people = """
        {{> top}}
        {{#campaign}}
        <h1 id="people">People</h1>
        <p class="muted"><a href="/console/campaigns/{{campaign_id}}">{{campaign}}</a> · {{workspace}} · {{status}}</p>
        {{/campaign}}
        <form method="get" action="/console/campaigns/{{#campaign}}{{campaign_id}}{{/campaign}}/people">
        <label>Status <select name="status"><option value="">any</option>
        {{#statuses}}<option{{#selected}} selected{{/selected}}>{{status}}</option>{{/statuses}}</select></label>
        <label>Name, company or profile <input name="q" value="{{search}}"></label> <button type="submit">Filter</button>
        </form>
        <table id="people-table"><tr><th>contact</th><th>name</th><th>company</th><th>status</th><th>why</th><th>last event</th><th>sender</th></tr>
        {{#people}}<tr><td class="n">{{contact_id}}</td><td>{{name}}</td><td>{{company}}</td><td>{{status}}</td><td>{{reason}}</td><td>{{last_event}}</td>
        <td><a href="/console/accounts/{{sender_account_id}}">{{sender_account_id}}</a></td></tr>{{/people}}
        {{^people}}<tr><td colspan="7" class="muted">no contacts here</td></tr>{{/people}}
        </table>
        {{> pager}}
        {{> bottom}}
        """

    static let job = """
        {{> top}}
        {{#job}}
        <h1>Job {{id}}</h1>
        <table id="job">
        <tr><th>kind</th><td>{{kind}}</td></tr><tr><th>state</th><td>{{state}}</td></tr>
        <tr><th>attempts</th><td>{{attempt}} of {{max_attempts}}</td></tr>
        <tr><th>sender account</th><td><a href="/console/accounts/{{account_id}}">{{account_id}}</a></td></tr>
        <tr><th>created (UTC)</th><td>{{created_at}}</td></tr><tr><th>runs at (UTC)</th><td>{{run_at}}</td></tr>
        <tr><th>finished (UTC)</th><td>{{finished_at}}</td></tr>
        <tr><th>args</th><td><code>{{args}}</code></td></tr>
        </table>
        {{/job}}
        <h2>Errors</h2>
        <table id="job-errors"><tr><th>attempt</th><th>at</th><th>then</th><th>error</th></tr>
        {{#errors}}<tr><td class="n">{{attempt}}</td><td>{{at}}</td><td>{{action}}</td><td>{{error}}</td></tr>{{/errors}}
        {{^errors}}<tr><td colspan="4" class="muted">no errors</td></tr>{{/errors}}
        </table>
        {{> bottom}}
        """

    static let notFound = """
        {{> top}}
        <h1>Not found</h1>
        <p id="not-found">There is no {{what}} in {{agency}}.</p>
        {{> bottom}}
        """
}
