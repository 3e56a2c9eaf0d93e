//! A PostgreSQL database of its own for a test, on the server `PAYRULES_TEST_POSTGRES`
//! names (a role that may create databases; `PAYRULES_TEST_POSTGRES_PASSWORD` its
//! password; `PAYRULES_TEST_POSTGRES_CA` the CA of its TLS certificate, and then the hosts
//! connect over TLS), dropped after. Without that server the test says so and passes, unless
//! `PAYRULES_REQUIRE_POSTGRES` is set (CI sets it): then it fails.

use std::path::Path;
use std::str::FromStr;

/// The test server: shared by the tests that each use a database of their own, held
/// alone by a test that restarts it.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// How a test holds the server.
enum Hold {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

/// A database made for one test.
pub struct Database {
    /// Released once `drop` has dropped the database.
    _hold: Hold,
    admin: tokio_postgres::Config,
    name: String,
    password: Option<String>,
    /// The audit key every host on it signs with (hosts sharing a database share keys).
    keys: tempfile::TempDir,
}

impl Database {
    /// A fresh database, or `None` (with a note) where there is no test server.
    pub fn make() -> Option<Database> {
        let hold = Hold::Shared(SERVER.read().unwrap_or_else(|p| p.into_inner()));
        Database::with(hold)
    }

    /// A fresh database, the server held by this test alone (to restart it).
    pub fn make_exclusive() -> Option<Database> {
        let hold = Hold::Alone(SERVER.write().unwrap_or_else(|p| p.into_inner()));
        Database::with(hold)
    }

    fn with(hold: Hold) -> Option<Database> {
        let Ok(url) = std::env::var("PAYRULES_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
                "PAYRULES_REQUIRE_POSTGRES is set, but PAYRULES_TEST_POSTGRES is not"
            );
            eprintln!("PAYRULES_TEST_POSTGRES is not set: the PostgreSQL test is skipped");
            return None;
        };
        let password = std::env::var("PAYRULES_TEST_POSTGRES_PASSWORD").ok();
        let mut admin = tokio_postgres::Config::from_str(&url).expect("PAYRULES_TEST_POSTGRES");
        if let Some(password) = &password {
            admin.password(password.as_bytes());
        }
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("randomness");
        let name = format!(
            "payrules_e2e_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let keys = tempfile::tempdir().expect("a directory");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
            .args(["audit", "new-key", "--key-file"])
            .arg(keys.path().join("audit.key"))
            .output()
            .expect("payrules audit new-key runs");
        assert!(status.status.success(), "{status:?}");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
            .args(["keys", "new-master-key", "--key-file"])
            .arg(keys.path().join("master.key"))
            .output()
            .expect("payrules keys new-master-key runs");
        assert!(status.status.success(), "{status:?}");
        let db = Database {
            _hold: hold,
            admin,
            name,
            password,
            keys,
        };
        db.admin(&format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    /// The `[store]` lines that reach it, the password in `password_file` (mode 0600).
    pub fn store_lines(&self, password_file: &Path) -> String {
        use std::os::unix::fs::OpenOptionsExt;
        use tokio_postgres::config::Host;
        let host = match self.admin.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            other => panic!("the test server is reached over TCP, not {other:?}"),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let user = self.admin.get_user().unwrap_or("postgres");
        let mut lines = format!("url = \"postgres://{user}@{host}:{port}/{}\"\n", self.name);
        // Where the test server speaks TLS (CI), the hosts use it, verified.
        if let Some(ca) = std::env::var_os("PAYRULES_TEST_POSTGRES_CA") {
            lines += &format!("tls_ca_file = {:?}\n", Path::new(&ca).display().to_string());
        }
        if let Some(password) = &self.password {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(password_file)
                .expect("the password file");
            std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())
                .expect("the password");
            lines += &format!(
                "password_file = {:?}\n",
                password_file.display().to_string()
            );
        }
        lines
    }

    /// The audit key file the hosts on it share.
    pub fn audit_key_file(&self) -> std::path::PathBuf {
        self.keys.path().join("audit.key")
    }

    /// The master key file the hosts on it share.
    pub fn master_key_file(&self) -> std::path::PathBuf {
        self.keys.path().join("master.key")
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs statements on the server as the test role (in its maintenance database).
    pub fn admin(&self, sql: &str) {
        run(self.admin.clone(), sql.to_owned());
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs `sql` on a thread of its own with a runtime of its own.
fn run(config: tokio_postgres::Config, sql: String) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("the test server");
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    })
    .join()
    .expect("the SQL thread");
}
