//! The real `payrules serve` binary on a free loopback port, with the example rules, a
//! real SQLite file in a temporary directory, and four API keys; and a small HTTP client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use payrules::api::auth::key_sha256;
use serde_json::Value;

use crate::support::{example_rules, workspace};

/// A key with the submitter role.
pub const SUBMITTER: &str = "pr_test_submitter_checkout_0001";
/// A second submitter (another system).
pub const OTHER_SUBMITTER: &str = "pr_test_submitter_treasury_0002";
/// A key with the operator role.
pub const OPERATOR: &str = "pr_test_operator_0003";
/// A key with the auditor role.
pub const AUDITOR: &str = "pr_test_auditor_0004";
/// A key with the reviewer role (named `analyst`).
pub const REVIEWER: &str = "pr_test_reviewer_analyst_0005";
/// A second reviewer (named `analyst-2`).
pub const OTHER_REVIEWER: &str = "pr_test_reviewer_analyst2_0006";
/// A key that both submits and reviews (named `desk`): what four eyes is about.
pub const DESK: &str = "pr_test_submitter_reviewer_desk_0007";

/// A running service.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: tempfile::TempDir,
    limits: String,
    rules_dir: PathBuf,
    /// The `[store]` table's lines; empty for the SQLite file in `dir`.
    store: String,
    agent: ureq::Agent,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("an error body: {}", self.body))
            .to_owned()
    }
}

impl Server {
    /// A service with the default limits.
    pub fn start() -> Server {
        Server::with_limits("")
    }

    /// A service whose `[limits]` table has these lines.
    pub fn with_limits(limits: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Server::launch(
            dir,
            limits.to_owned(),
            "text",
            example_rules(),
            String::new(),
        )
    }

    /// A service with the example rules on a PostgreSQL database (a host of several),
    /// with `[limits]` lines and more `[store]` lines.
    pub fn on_postgres(db: &crate::postgres::Database, limits: &str, store: &str) -> Server {
        Server::on_postgres_with_rules(db, &example_rules(), limits, store)
    }

    /// A host of a PostgreSQL database with the rules of `rules_dir`.
    pub fn on_postgres_with_rules(
        db: &crate::postgres::Database,
        rules_dir: &Path,
        limits: &str,
        store: &str,
    ) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let password_file = dir.path().join("db-password");
        let store = format!(
            "{}{store}\n\n[audit]\nkey_file = {:?}\n\n[personal_data]\nmaster_key_file = {:?}\n",
            db.store_lines(&password_file),
            db.audit_key_file().display().to_string(),
            db.master_key_file().display().to_string()
        );
        Server::launch(dir, limits.to_owned(), "text", rules_dir.to_owned(), store)
    }

    /// A service on the rules of `rules_dir` (watched for changes).
    pub fn with_rules(rules_dir: &Path) -> Server {
        Server::with_rules_and_limits(rules_dir, "")
    }

    /// A service on the rules of `rules_dir`, with `[limits]` lines.
    pub fn with_rules_and_limits(rules_dir: &Path, limits: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Server::launch(
            dir,
            limits.to_owned(),
            "text",
            rules_dir.to_owned(),
            String::new(),
        )
    }

    /// A service logging JSON lines.
    pub fn with_json_logs() -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Server::launch(dir, String::new(), "json", example_rules(), String::new())
    }

    fn launch(
        dir: tempfile::TempDir,
        limits: String,
        log_format: &str,
        rules_dir: PathBuf,
        store: String,
    ) -> Server {
        let keys: String = [
            ("checkout", SUBMITTER, "\"submitter\""),
            ("treasury", OTHER_SUBMITTER, "\"submitter\""),
            ("ops", OPERATOR, "\"operator\""),
            ("audit", AUDITOR, "\"auditor\""),
            ("analyst", REVIEWER, "\"reviewer\""),
            ("analyst-2", OTHER_REVIEWER, "\"reviewer\""),
            ("desk", DESK, "\"submitter\", \"reviewer\""),
        ]
        .iter()
        .map(|(name, key, roles)| {
            format!(
                "[[api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = [{roles}]\n\n",
                key_sha256(key)
            )
        })
        .collect();
        let config = format!(
            "listen = \"127.0.0.1:0\"\nrules_dir = {:?}\nshadow_roots = [{:?}]\n\n[store]\npath = {:?}\n{store}\n\n[log]\nlevel = \"debug\"\nformat = \"{log_format}\"\n\n[limits]\n{limits}\n\n{keys}",
            rules_dir.display().to_string(),
            std::env::temp_dir().display().to_string(),
            dir.path().join("payrules.db").display().to_string(),
        );
        let config_path = dir.path().join("payrules.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("stderr.log"))
            .expect("a log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_payrules"))
            .current_dir(workspace())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("payrules serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_default();
        let Some(base) = line.trim().strip_prefix("payrules listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("the service did not start: {line:?}\n{log}");
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Server {
            child,
            base: base.to_owned(),
            dir,
            limits,
            rules_dir,
            store,
            agent,
        }
    }

    /// Stops the process at once (SIGKILL) and starts a new one on the same store.
    pub fn crash_and_restart(mut self) -> Server {
        self.kill();
        self.relaunch()
    }

    /// Stops the process as a deployment does (SIGTERM, waiting for it to end) and starts
    /// a new one on the same store.
    pub fn stop_and_restart(mut self) -> Server {
        assert!(self.terminate().success(), "{}", self.log());
        self.relaunch()
    }

    /// A new process on this one's directory, config and store (this one has ended).
    fn relaunch(mut self) -> Server {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a directory"));
        let limits = std::mem::take(&mut self.limits);
        let rules_dir = std::mem::take(&mut self.rules_dir);
        let store = std::mem::take(&mut self.store);
        drop(self);
        Server::launch(dir, limits, "text", rules_dir, store)
    }

    /// A console session for `key`, logged in through the login form: the `Cookie`
    /// header's value.
    pub fn console_session(&self, key: &str) -> String {
        let login = self.request(
            "POST",
            "/console/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(format!("key={key}").as_bytes()),
        );
        let cookie = login.header("set-cookie").expect("a session").to_owned();
        cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// SIGKILL, as a power cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL by process id (from another thread, while requests are on their way).
    pub fn sigkill(&self) {
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then waits for the process to end (at most 60 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_for_exit()
    }

    /// SIGTERM, without waiting.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to end (at most 60 s).
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("the service did not stop within 60 s of SIGTERM");
    }

    /// The store file.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("payrules.db")
    }

    /// The config file it runs with.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("payrules.toml")
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The socket address, `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    /// Sends the requests of [`Server::request`] and its helpers through `agent` (one
    /// with the TLS settings a test needs).
    pub fn set_agent(&mut self, agent: ureq::Agent) {
        self.agent = agent;
    }

    /// `POST /v1/payments` with a JSON body.
    pub fn submit(&self, key: &str, idempotency_key: &str, payment: &Value) -> Reply {
        self.request(
            "POST",
            "/v1/payments",
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", &format!("\"{idempotency_key}\"")),
            ],
            Some(payment.to_string().as_bytes()),
        )
    }

    /// `POST /v1/payments/{id}/review` with a JSON body, as `key`.
    pub fn review(&self, key: &str, payment_id: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            &format!("/v1/payments/{payment_id}/review"),
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `GET path` with a key (or none).
    pub fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        self.request("GET", path, &headers, None)
    }

    /// Polls `GET path` as the operator (at most 20 s) until `done` holds of the status
    /// and the body; returns the body. `what` names the wait in a failure.
    pub fn wait_for(&self, path: &str, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let started = std::time::Instant::now();
        loop {
            let reply = self.get(path, Some(OPERATOR));
            let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            if done(reply.status, &body) {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: still {} {}",
                reply.status,
                reply.body
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Any request.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => {
                let mut request = self.agent.get(&url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            "POST" => {
                let mut request = self.agent.post(&url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(body.unwrap_or_default())
            }
            "DELETE" => {
                let mut request = self.agent.delete(&url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
            other => panic!("no {other} in these tests"),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .into_body()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {path}: the body: {e}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Every payment in the store, as the auditor lists them.
    pub fn all_payments(&self) -> Vec<Value> {
        let mut payments = Vec::new();
        let mut cursor = String::new();
        loop {
            let reply = self.get(&format!("/v1/payments?limit=500{cursor}"), Some(AUDITOR));
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = reply.json();
            payments.extend(
                page["payments"]
                    .as_array()
                    .expect("payments")
                    .iter()
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return payments,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An example payment as JSON, with its end-to-end id made unique by `tag`.
pub fn payment(example: &str, tag: &str) -> Value {
    let path = workspace().join("examples/payments").join(example);
    let text = std::fs::read_to_string(path).expect("the example payment");
    let mut value: Value = serde_json::from_str(&text).expect("JSON");
    value["end_to_end_id"] = Value::String(format!("E2E-{tag}"));
    value
}

/// Starts `command` (a `payrules serve`) and reads the line where it says it listens:
/// the process, and its base URL or, if it did not start, that line.
pub fn spawn_serve(mut command: Command) -> (Child, Result<String, String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("payrules serve starts");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let base = match line.trim().strip_prefix("payrules listening on ") {
        Some(base) => Ok(base.to_owned()),
        None => Err(line),
    };
    (child, base)
}

/// `payrules audit verify --config CONFIG`, with the checkpoints of `checkpoints`.
pub fn audit_verify_config(config: &Path, checkpoints: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .arg("--checkpoints")
        .arg(checkpoints)
        .output()
        .expect("payrules audit verify runs")
}

/// Runs `payrules audit verify --store PATH`.
pub fn audit_verify(store: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["audit", "verify", "--store"])
        .arg(store)
        .output()
        .expect("payrules audit verify runs")
}
