//! The console in a real browser: Debian's Chromium, driven through chromedriver
//! (WebDriver over HTTP on loopback), against the real binary. One browser at a time; a
//! screenshot under `target/console-screenshots/` when a test fails. Where chromedriver is
//! absent the tests say so and skip, unless `PAYRULES_REQUIRE_CHROMIUM` is set (`.ci/run`
//! sets it), when its absence fails them.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{AUDITOR, REVIEWER, SUBMITTER, Server, payment};
use crate::support::workspace;

/// One browser at a time (two cores, and Chromium is heavy).
static ONE_BROWSER: Mutex<()> = Mutex::new(());

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A Chromium session through chromedriver.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    /// The test's name, for its screenshot.
    name: &'static str,
    /// Chromium's profile: its own, removed with it (a profile left behind and met again
    /// by a later browser on the same port brought back cookies for 127.0.0.1).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium, or `None` (skipped) where there is none and none is required.
    fn start(name: &'static str) -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists()
        {
            assert!(
                std::env::var_os("PAYRULES_REQUIRE_CHROMIUM").is_none(),
                "PAYRULES_REQUIRE_CHROMIUM is set, but {CHROMEDRIVER} or {CHROMIUM} is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "{CHROMEDRIVER} or {CHROMIUM} is missing: the browser test {name} is skipped"
            );
            return None;
        }
        // Chromium's first start on a fresh, busy machine can fail (chromedriver answers
        // "session not created"): a fresh chromedriver and profile, up to three times.
        let mut attempt = 0;
        let (driver, base, session, agent, profile) = loop {
            attempt += 1;
            match Browser::launch() {
                Ok(launched) => break launched,
                Err(why) if attempt < 3 => {
                    eprintln!("{name}: Chromium did not start (attempt {attempt}): {why}")
                }
                Err(why) => panic!("Chromium did not start in {attempt} attempts: {why}"),
            }
        };
        let browser = Browser {
            driver,
            base,
            session,
            agent,
            name,
            _profile: profile,
        };
        // Finding an element waits for it (a page still loading), up to 5 s.
        browser.call(
            "POST",
            "/timeouts",
            Some(json!({"implicit": 5000, "pageLoad": 20000})),
        );
        Some(browser)
    }

    /// A chromedriver on a free loopback port and a new session in it with a new profile:
    /// the driver, its address, the session's id, the agent that talks to it and the
    /// profile; or why not.
    fn launch() -> Result<(Child, String, String, ureq::Agent, tempfile::TempDir), String> {
        let profile = tempfile::Builder::new()
            .prefix("payrules-chromium-")
            .tempdir()
            .map_err(|e| format!("a profile directory: {e}"))?;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(90)))
            .build()
            .into();
        let session = (|| {
            let started = Instant::now();
            while agent.get(format!("{base}/status")).call().is_err() {
                if started.elapsed() > Duration::from_secs(20) {
                    return Err("chromedriver did not answer within 20 s".to_owned());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let capabilities = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             "--window-size=1280,900",
                             format!("--user-data-dir={}", profile.path().display())],
                },
                "goog:loggingPrefs": {"browser": "ALL"},
            }}});
            let mut reply = agent
                .post(format!("{base}/session"))
                .send_json(&capabilities)
                .map_err(|e| format!("POST /session: {e}"))?;
            let body: Value = reply
                .body_mut()
                .read_json()
                .map_err(|e| format!("POST /session answered no JSON: {e}"))?;
            body["value"]["sessionId"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no session: {body}"))
        })();
        match session {
            Ok(session) => Ok((driver, base, session, agent, profile)),
            Err(why) => {
                let _ = driver.kill();
                let _ = driver.wait();
                Err(why)
            }
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut reply = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let body: Value = reply.body_mut().read_json().unwrap_or(Value::Null);
        if body["value"]["error"].is_string() {
            panic!("{method} {path}: {}", body["value"]);
        }
        body["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// The element `css` selects (the first).
    fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Clicks `css`, which submits a form or follows a link, and waits for the next page.
    fn click(&self, css: &str) {
        self.run("window.payrulesOldPage = true; return null");
        let element = self.find(css);
        self.call("POST", &format!("/element/{element}/click"), None);
        let started = Instant::now();
        loop {
            let loaded = self.run(
                "return window.payrulesOldPage === undefined && document.readyState === 'complete'",
            );
            if loaded == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no new page after clicking {css}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// What the page's console logged (chromedriver's log endpoint).
    fn console_entries(&self) -> Vec<Value> {
        self.call("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The errors the page's console logged since last asked.
    fn severe_console_entries(&self) -> Vec<Value> {
        self.console_entries()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect()
    }

    fn cookies(&self) -> Vec<Value> {
        self.call("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn screenshot(&self, file: &str) {
        let png = self.call("GET", "/screenshot", None);
        let Some(png) = png.as_str() else { return };
        let dir = workspace().join("target/console-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(bytes) = base64_decode(png) {
            let _ = std::fs::write(dir.join(file), bytes);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.screenshot(&format!("{}-failed.png", self.name));
        }
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (what WebDriver's screenshots are), decoded.
fn base64_decode(text: &str) -> Result<Vec<u8>, ()> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        _ => Err(()),
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)?) << (18 - 6 * i);
        }
        let [_, a, b, c] = n.to_be_bytes();
        out.push(a);
        if chunk.len() > 2 {
            out.push(b);
        }
        if chunk.len() > 3 {
            out.push(c);
        }
    }
    Ok(out)
}

/// Logs in with `key`.
fn log_in(browser: &Browser, server: &Server, key: &str) {
    browser.goto(&format!("{}/console/login", server.base));
    browser.type_into("#key", key);
    browser.click("#login");
}

/// A held payment whose debtor's name is markup; its id.
fn held_with_markup(server: &Server) -> String {
    let mut body = payment("weak-match-review.json", "console-1");
    body["debtor"]["name"] = json!("<img src=x onerror=alert(1)>");
    let reply = server.submit(SUBMITTER, "console-1", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["status"], "pending_review", "{}", reply.body);
    reply.json()["payment_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_reviewer_resolves_a_held_payment_in_the_browser_and_a_submitter_key_gets_no_pages() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(browser) = Browser::start("review") else {
        return;
    };
    let server = Server::start();
    let id = held_with_markup(&server);

    // A submitting system's key has no console pages.
    log_in(&browser, &server, SUBMITTER);
    assert!(
        browser.text(".notice").contains("no console pages"),
        "{}",
        browser.text("main")
    );
    assert!(browser.cookies().is_empty(), "no session for it");
    // (The refusal's 403 is in the console's log as a failed load: read and set aside.)
    browser.console_entries();

    // A reviewer: the queue, the payment's name shown as text, not markup.
    log_in(&browser, &server, REVIEWER);
    assert!(
        browser.url().ends_with("/console/reviews"),
        "{}",
        browser.url()
    );
    browser.screenshot("queue.png");
    assert!(browser.text("#queue").contains(&id));
    let cookie = browser
        .cookies()
        .into_iter()
        .find(|c| c["name"] == "payrules_console")
        .expect("the session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    browser.click(&format!("a[href='/console/payments/{id}']"));
    assert_eq!(browser.text("#debtor"), "<img src=x onerror=alert(1)>");
    assert_eq!(
        browser.run("return document.images.length"),
        0,
        "no image was made"
    );

    // The trace is the API's.
    let api = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    let names = browser
        .run("return [...document.querySelectorAll('#trace .rule-name')].map(e => e.textContent)");
    let api_names: Vec<&str> = api["decision"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, json!(api_names));
    let outcomes = browser.run(
        "return [...document.querySelectorAll('#trace .rule-outcome')].map(e => e.textContent)",
    );
    for (shown, rule) in outcomes
        .as_array()
        .unwrap()
        .iter()
        .zip(api["decision"]["rules"].as_array().unwrap())
    {
        let outcome = rule["outcome"].as_str().unwrap();
        assert!(
            shown.as_str().unwrap().starts_with(outcome),
            "{shown} for {outcome}"
        );
    }
    browser.screenshot("payment.png");

    // Reproduced by the rule set that made it: the same decision, rule by rule.
    browser.click("#reproduce");
    assert!(
        browser.text("#verdict").starts_with("Same decision"),
        "{}",
        browser.text("main")
    );
    let rows = browser.run("return document.querySelectorAll('#reproduced tbody tr').length");
    assert_eq!(rows, json!(api_names.len()));
    browser.click(&format!("h1 a[href='/console/payments/{id}']"));

    // A reject with no reason is refused in the API's words; then an approval stands.
    browser.click("#reject");
    assert!(
        browser
            .text(".notice")
            .contains("Not recorded: a reject needs an ISO 20022"),
        "{}",
        browser.text("main")
    );
    browser.type_into("#approve-note", "invoice seen");
    browser.click("#approve");
    assert!(browser.text(".notice").contains("Recorded: approved"));
    assert_eq!(browser.text("#final-status"), "accepted");
    assert!(browser.text("#review").contains("approve by analyst"));
    let stored = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    assert_eq!(stored["final_status"], "accepted");
    assert_eq!(stored["review"]["note"], "invoice seen");

    // Nothing left the origin, and the console logged no error.
    let elsewhere = browser.run(&format!(
        "return performance.getEntriesByType('resource').map(e => e.name)\
         .filter(n => !n.startsWith('{}'))",
        server.base
    ));
    assert_eq!(elsewhere, json!([]));
    let errors = browser.severe_console_entries();
    assert!(errors.is_empty(), "{errors:?}");
}

/// The shadow report page says what `GET /v1/rules/shadow/report` says: how many payments
/// were compared and would change, each transition and cause, the examples.
#[test]
fn the_shadow_report_page_shows_the_apis_report() {
    let rules = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&crate::support::example_rules(), rules.path());
    let shadow = rules.path().join("shadow");
    crate::support::copy_dir(&crate::support::example_rules(), &shadow);
    let policy = std::fs::read_to_string(shadow.join("pipeline.toml")).unwrap();
    std::fs::write(
        shadow.join("pipeline.toml"),
        policy.replace("review-at = 600", "review-at = 100"),
    )
    .unwrap();
    let server = Server::with_rules(rules.path());
    server.wait_for(
        "/v1/rules/shadow",
        "the shadow set installed",
        |status, _| status == 200,
    );
    for n in 0..6 {
        let key = format!("s-{n}");
        assert_eq!(
            server
                .submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key))
                .status,
            201
        );
    }
    let report = server.wait_for("/v1/rules/shadow/report", "six compared", |_, r| {
        r["compared"] == 6
    });
    let session = server.console_session(crate::server::OPERATOR);
    let page = server.request(
        "GET",
        "/console/rules/shadow",
        &[("Cookie", &session)],
        None,
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let changed = report["changed"].as_u64().unwrap();
    assert!(changed > 0, "{report}");
    assert!(
        page.body.contains(&format!("{changed} of 6 would change")),
        "{}",
        page.body
    );
    for transition in report["transitions"].as_array().unwrap() {
        let row = format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            transition["from"].as_str().unwrap(),
            transition["to"].as_str().unwrap(),
            transition["count"]
        );
        assert!(page.body.contains(&row), "{row} in {}", page.body);
    }
    for example in report["examples"].as_array().unwrap() {
        assert!(page.body.contains(example["payment_id"].as_str().unwrap()));
    }
    let rules_page = server.request("GET", "/console/rules", &[("Cookie", &session)], None);
    assert!(rules_page.body.contains("href=\"/console/rules/shadow\""));
}

/// Outside the browser: every console answer carries the CSP; a form POSTed without the
/// session's CSRF token is refused and records nothing; without a session, the pages send
/// to the login.
#[test]
fn console_posts_need_the_sessions_csrf_token_and_pages_carry_a_strict_csp() {
    let server = Server::start();
    let id = held_with_markup(&server);
    let login = server.request(
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!("key={REVIEWER}").as_bytes()),
    );
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = server.request(
        "GET",
        &format!("/console/payments/{id}"),
        &[("Cookie", &session)],
        None,
    );
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "no script on a page");
    let debtor = page
        .body
        .lines()
        .find(|l| l.contains("id=\"debtor\""))
        .unwrap_or("");
    assert!(
        debtor.contains("&#60;img src=x onerror=alert(1)&#62;")
            || debtor.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "escaped: {debtor}"
    );
    for token in ["", "not-the-token"] {
        let forged = server.request(
            "POST",
            &format!("/console/payments/{id}/review"),
            &[
                ("Cookie", &session),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(format!("csrf={token}&verdict=approve").as_bytes()),
        );
        assert_eq!(forged.status, 403, "{}", forged.body);
    }
    let stored = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    assert_eq!(stored["final_status"], "pending_review", "nothing recorded");
    // Another site's form, with the victim's cookie and even the right token: refused.
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    let from_elsewhere = server.request(
        "POST",
        &format!("/console/payments/{id}/review"),
        &[
            ("Cookie", &session),
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(format!("csrf={csrf}&verdict=approve").as_bytes()),
    );
    assert_eq!(from_elsewhere.status, 403, "{}", from_elsewhere.body);
    let login_from_elsewhere = server.request(
        "POST",
        "/console/login",
        &[
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(format!("key={REVIEWER}").as_bytes()),
    );
    assert_eq!(login_from_elsewhere.status, 403, "login CSRF refused");
    let anonymous = server.request("GET", "/console/reviews", &[], None);
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), Some("/console/login"));
    let wrong = server.request(
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"key=pr_not_a_key"),
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
}

/// An auditor searches decisions and opens one; an operator sees the live rule set, and a
/// reload of a broken directory refused with the file at fault, nothing changed live.
#[test]
fn decisions_are_searched_and_a_refused_reload_is_shown_with_its_file() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(browser) = Browser::start("rules") else {
        return;
    };
    let rules = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&crate::support::example_rules(), rules.path());
    let server = Server::with_rules(rules.path());
    let accepted = server.submit(SUBMITTER, "s-1", &payment("us-payroll-fednow.json", "s-1"));
    assert_eq!(accepted.json()["status"], "accepted", "{}", accepted.body);
    let held = held_with_markup(&server);

    log_in(&browser, &server, AUDITOR);
    browser.goto(&format!("{}/console/payments", server.base));
    browser.click("a[href='/console/payments']");
    let all = browser.run("return [...document.querySelectorAll('#decisions tbody tr')].length");
    assert_eq!(all, 2);
    browser.run("document.getElementById('status').value = 'pending_review'; return null");
    browser.click("#search");
    assert!(
        browser.url().contains("status=pending_review"),
        "{}",
        browser.url()
    );
    let shown = browser.run(
        "return [...document.querySelectorAll('#decisions tbody tr a')].map(a => a.textContent)",
    );
    assert_eq!(shown, json!([held]));
    // By a rule that fired, by end-to-end id, by the rule set's first digits: the form
    // keeps what was searched.
    let accepted_id = accepted.json()["payment_id"].as_str().unwrap().to_owned();
    let version = accepted.json()["rule_set_version"]
        .as_str()
        .unwrap()
        .to_owned();
    for (field, value, expected) in [
        ("rule", "sanctions-screening", json!([held])),
        ("end_to_end_id", "E2E-s-1", json!([accepted_id])),
        (
            "rule_set_version",
            &version[..12],
            json!([held, accepted_id]),
        ),
    ] {
        browser.run(&format!(
            "for (const f of ['status', 'rule', 'end_to_end_id', 'rule_set_version']) \
             document.getElementById(f).value = ''; \
             document.getElementById('{field}').value = '{value}'; return null"
        ));
        browser.click("#search");
        let shown = browser.run(
            "return [...document.querySelectorAll('#decisions tbody tr a')].map(a => a.textContent)",
        );
        assert_eq!(shown, expected, "{field}={value}");
        assert_eq!(
            browser.run(&format!("return document.getElementById('{field}').value")),
            json!(value)
        );
    }
    browser.click(&format!("#decisions a[href='/console/payments/{held}']"));
    assert_eq!(browser.text("#status"), "pending_review");
    assert!(
        browser.run("return document.getElementById('approve') === null") == json!(true),
        "an auditor reads, it does not review"
    );
    browser.click("header form button");
    assert!(
        browser.url().ends_with("/console/login"),
        "{}",
        browser.url()
    );

    // An operator lands on the overview: the API's figures, as charts and a table.
    log_in(&browser, &server, crate::server::OPERATOR);
    assert!(
        browser.url().ends_with("/console/overview"),
        "{}",
        browser.url()
    );
    let figures = server
        .get("/v1/overview?window=15m", Some(crate::server::OPERATOR))
        .json();
    let total = &figures["total"];
    assert_eq!(
        browser.text("#total-accepted"),
        total["decisions"]["accepted"].to_string()
    );
    assert_eq!(
        browser.text("#total-pending"),
        total["decisions"]["pending_review"].to_string()
    );
    assert_eq!(browser.text("#total-decisions"), "2");
    // Five charts; the decisions chart draws one line (or dot) per status.
    let charts = browser.run("return document.querySelectorAll('figure.chart svg').length");
    assert_eq!(charts, json!(5), "{}", browser.text("main"));
    let drawn = browser.run(
        "return [...document.querySelectorAll('figure.chart')][0]\
         .querySelectorAll('polyline, circle').length",
    );
    assert!(drawn.as_u64().unwrap() >= 3, "{drawn}");
    let table = browser.run(
        "return [...document.querySelectorAll('#rules tbody tr')]\
         .map(r => [r.cells[0].textContent, Number(r.cells[1].textContent)])",
    );
    let expected: Vec<Value> = total["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["name"], r["calls"]]))
        .collect();
    assert_eq!(table, json!(expected));
    browser.screenshot("overview.png");
    browser.click("nav.windows a[href='/console/overview?window=24h']");
    assert!(
        browser
            .text("#source")
            .starts_with("Every host sharing the store"),
        "{}",
        browser.text("#source")
    );
    // From the overview's table to a rule's page: its vectors as the API has them.
    browser.goto(&format!("{}/console/overview", server.base));
    browser.click("#rules a[href='/console/rules/by-name/limits']");
    let api = server
        .get("/v1/rules/by-name/limits", Some(crate::server::OPERATOR))
        .json();
    let cases = browser.run(
        "return [...document.querySelectorAll('#vectors tbody tr')].map(r => r.cells[0].textContent)",
    );
    let expected: Vec<Value> = api["vectors"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(cases, json!(expected));
    assert_eq!(
        browser.text("#component"),
        api["rule"]["version"].as_str().unwrap()
    );
    browser.goto(&format!("{}/console/rules", server.base));
    let live = server
        .get("/v1/rules", Some(crate::server::OPERATOR))
        .json();
    assert_eq!(
        browser.text("#live-version"),
        live["version"].as_str().unwrap()
    );
    std::fs::write(
        rules.path().join("limits.toml"),
        "this is not = [a manifest",
    )
    .unwrap();
    browser.click("#reload");
    let notice = browser.text(".notice");
    assert!(
        notice.starts_with("Refused, nothing changed live") && notice.contains("limits.toml"),
        "{notice}"
    );
    assert!(browser.text("#last-refused").contains("limits.toml"));
    assert_eq!(
        browser.text("#live-version"),
        live["version"].as_str().unwrap(),
        "the live set stays"
    );
    // The history, newest first: the refusal with its file, then the start's version.
    let history = browser.run(
        "return [...document.querySelectorAll('#history tbody tr')].map(r => \
         [...r.querySelectorAll('td')].map(d => d.textContent.trim()))",
    );
    let rows = history.as_array().expect("history rows");
    // The watcher may have refused the same file before the operator's reload did.
    assert!((2..=3).contains(&rows.len()), "{history}");
    assert_eq!(
        (rows[0][1].as_str(), rows[0][3].as_str()),
        (Some("refused"), Some("console:ops")),
        "{history}"
    );
    for row in &rows[..rows.len() - 1] {
        assert_eq!(row[1], "refused", "{history}");
        assert!(
            row[4].as_str().unwrap().contains("limits.toml"),
            "{history}"
        );
    }
    let first = &rows[rows.len() - 1];
    assert_eq!(
        (first[1].as_str(), first[2].as_str(), first[3].as_str()),
        (
            Some("loaded"),
            Some(&live["version"].as_str().unwrap()[..12]),
            Some("start")
        ),
        "{history}"
    );
    browser.screenshot("rules.png");

    // A new version goes live; the operator makes the start's version live again from the
    // history, then releases the rollback.
    std::fs::copy(
        crate::support::example_rules().join("limits.toml"),
        rules.path().join("limits.toml"),
    )
    .unwrap();
    let policy = std::fs::read_to_string(rules.path().join("pipeline.toml")).unwrap();
    std::fs::write(
        rules.path().join("pipeline.toml"),
        policy.replace("review-at = 600", "review-at = 500"),
    )
    .unwrap();
    let start_version = live["version"].as_str().unwrap().to_owned();
    let newer = server.wait_for("/v1/rules", "the new policy live", |status, rules| {
        status == 200 && rules["version"] != start_version.as_str()
    })["version"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.goto(&format!("{}/console/rules", server.base));
    let offered = browser.run(
        "return [...document.querySelectorAll('#history input[name=version]')].map(i => i.value)",
    );
    assert_eq!(
        offered,
        json!([start_version]),
        "only the kept, not live version"
    );
    browser.click("#history button.rollback");
    let notice = browser.text(".notice");
    assert!(
        notice.starts_with(&format!("Rolled back: {newer} → {start_version}")),
        "{notice}"
    );
    assert_eq!(browser.text("#live-version"), start_version);
    assert!(browser.text("#rollback").contains(&newer));
    browser.click("#release");
    assert!(
        browser
            .text(".notice")
            .starts_with("Released: the directory's"),
        "{}",
        browser.text(".notice")
    );
    assert_eq!(browser.text("#live-version"), newer);

    // A canary in canary/: its figures, its share changed, then promoted, from the page.
    let canary = rules.path().join("canary");
    crate::support::copy_dir(&crate::support::example_rules(), &canary);
    std::fs::write(
        canary.join("pipeline.toml"),
        policy.replace("review-at = 600", "review-at = 100"),
    )
    .unwrap();
    std::fs::write(canary.join("canary.toml"), "percent = 50\n").unwrap();
    let reload = server.request(
        "POST",
        "/v1/rules/reload",
        &[(
            "Authorization",
            &format!("Bearer {}", crate::server::OPERATOR),
        )],
        None,
    );
    assert_eq!(reload.status, 200, "{}", reload.body);
    let started = server.wait_for("/v1/rules/canary", "the canary started", |status, _| {
        status == 200
    });
    for n in 0..20 {
        let key = format!("c-{n}");
        let mut body = payment("us-payroll-fednow.json", &key);
        body["debtor"]["account"] = json!({ "id": format!("C{n}") });
        assert_eq!(server.submit(SUBMITTER, &key, &body).status, 201);
    }
    browser.goto(&format!("{}/console/rules", server.base));
    assert_eq!(browser.text("#canary-state"), "running");
    assert_eq!(
        browser.text("#canary-version"),
        started["version"].as_str().unwrap()
    );
    let report = server
        .get("/v1/rules/canary", Some(crate::server::OPERATOR))
        .json();
    let shown = browser.run(
        "return [...document.querySelectorAll('#canary-figures tbody tr')].map(r => \
         r.querySelectorAll('td')[1].textContent.trim())",
    );
    assert_eq!(
        shown,
        json!([
            report["live"]["decisions"].to_string(),
            report["canary"]["decisions"].to_string()
        ])
    );
    browser.screenshot("canary.png");
    browser.run("document.getElementById('percent').value = '30'; return null");
    browser.click("#canary-set-percent");
    assert_eq!(browser.text("#canary-percent"), "30%");
    browser.click("#canary-promote");
    assert!(
        browser.text(".notice").starts_with("Promoted:"),
        "{}",
        browser.text(".notice")
    );
    assert_eq!(browser.text("#canary-state"), "promoted");
    assert_eq!(
        browser.text("#live-version"),
        started["version"].as_str().unwrap()
    );
    let errors = browser.severe_console_entries();
    assert!(errors.is_empty(), "{errors:?}");
}

/// An auditor reads the audit log and checks the whole chain from the console: intact,
/// then, once an entry is edited in the database behind the service's back, broken at
/// that entry.
#[test]
fn an_auditor_checks_the_chain_from_the_console_and_sees_an_edit_named() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(browser) = Browser::start("audit") else {
        return;
    };
    let server = Server::start();
    let held = held_with_markup(&server);
    let reviewed = server.review(REVIEWER, &held, &json!({"verdict": "approve"}));
    assert_eq!(reviewed.status, 201, "{}", reviewed.body);

    log_in(&browser, &server, AUDITOR);
    browser.click("a[href='/console/audit']");
    let actions = browser
        .run("return [...document.querySelectorAll('#entries .action')].map(e => e.textContent)");
    let actions: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        actions.contains(&"payment.decided") && actions.contains(&"payment.reviewed"),
        "{actions:?}"
    );
    browser.click("#verify");
    let verdict = browser.text(".notice");
    assert!(verdict.starts_with("Intact:"), "{verdict}");

    // Someone with the database file edits the review's entry.
    let db = rusqlite::Connection::open(server.store()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_is_append_only_update;
         UPDATE audit_log SET detail = replace(detail, 'approve', 'reject')
             WHERE action = 'payment.reviewed';",
    )
    .unwrap();
    let seq: i64 = db
        .query_row(
            "SELECT seq FROM audit_log WHERE action = 'payment.reviewed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    browser.click("#verify");
    let verdict = browser.text(".notice");
    assert!(
        verdict.starts_with(&format!("BROKEN: audit entry {seq}")),
        "{verdict}"
    );
    browser.screenshot("audit.png");
}
