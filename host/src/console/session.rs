//! Console sessions: an API key exchanged at login for a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie, with a CSRF token of its own that every form
//! carries back. Sessions live in this process's memory: bounded in number, ending after
//! [`IDLE`] without a request or [`LIFETIME`] in all, and at logout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::api::auth::Principal;

/// The session cookie's name.
pub const COOKIE: &str = "payrules_console";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, however used.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// The most sessions held at once; past it, the least recently used ends.
const SESSIONS_MAX: usize = 10_000;

/// A logged-in key.
#[derive(Clone)]
pub struct Session {
    /// Who.
    pub principal: Principal,
    /// The token every form must carry back.
    pub csrf: String,
    /// What the next page shows once (the outcome of a form: POST-redirect-GET).
    notice: Option<String>,
    started: Instant,
    last_used: Instant,
}

/// The sessions of this process.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `principal`: its id (the cookie's value).
    pub fn start(&self, principal: Principal) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= SESSIONS_MAX
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                principal,
                csrf,
                notice: None,
                started: now,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// The live session of cookie value `id`, now used again.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get_mut(id) {
            Some(session) if live(session, now) => {
                session.last_used = now;
                Some(session.clone())
            }
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Leaves `notice` for the next page session `id` shows.
    pub fn flash(&self, id: &str, notice: String) {
        if let Some(session) = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            session.notice = Some(notice);
        }
    }

    /// The notice left for session `id`, once.
    pub fn take_flash(&self, id: &str) -> Option<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
            .and_then(|s| s.notice.take())
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

impl Session {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.last_used) < IDLE && now.duration_since(session.started) < LIFETIME
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(crate::registry::hex(&bytes))
}
