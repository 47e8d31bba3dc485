//! Checking PINs without letting the LAN race them, flood them or use them
//! to lock staff out.
//!
//! - [`PinVerifier`]: argon2 (≈19 MiB and tens of milliseconds a check, on
//!   purpose) runs on two dedicated threads, each reusing one memory
//!   buffer, behind a short queue. Memory is therefore bounded whatever
//!   arrives: when the queue is full an attempt is refused (503) instead of
//!   waiting for a thread (its answer is still held like every refusal,
//!   see `session::slow_refusal`).
//! - [`SignInGuard`]: every attempt is counted before it is verified, under
//!   one lock, so concurrent guesses cannot slip past the backoff; at most
//!   one attempt per device and two per address are in flight. Backoff is
//!   per paired device, per address and per staff member named; a device
//!   with no recent failures is held back only by its own record, so wrong
//!   PINs sent elsewhere never lock out a correct PIN from a paired device.
//!
//! It does not know HTTP beyond the errors it returns.

use super::error::ApiError;
use crate::domain::manifest::StaffEntry;
use crate::domain::time::Millis;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use axum::http::StatusCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Threads checking PINs; each holds one argon2 buffer (19 MiB by default).
const VERIFIER_THREADS: usize = 2;
/// Checks waiting for a thread; more are answered 503 at once.
const VERIFIER_QUEUE: usize = 4;
/// The largest argon2 memory cost accepted from a manifest, in KiB: a
/// hostile or careless hash must not make one check take a gigabyte.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;

/// Failures a device (or a staff member, or an address) may have before
/// it must wait.
const FREE_FAILURES: u32 = 5;
/// Longest wait, in seconds; waits double from 1 s.
const MAX_LOCK_SECS: i64 = 300;
/// Attempts from one address verified at once.
const IN_FLIGHT_PER_ADDR: u32 = 2;
/// Entries kept per kind of key; idle ones are dropped first, and past
/// this many live ones new keys are refused (memory stays bounded).
const MAX_TRACKED: usize = 4096;
/// An entry untouched this long (and not locked) is forgotten.
const FORGET_AFTER_MS: Millis = 15 * 60_000;

struct Job {
    pin: String,
    candidates: Vec<StaffEntry>,
    reply: tokio::sync::oneshot::Sender<Option<StaffEntry>>,
}

/// The PIN-checking threads.
pub struct PinVerifier {
    /// Bounded: `try_send` failing is the overload signal.
    jobs: SyncSender<Job>,
}

impl Default for PinVerifier {
    fn default() -> Self {
        Self::new(VERIFIER_THREADS, VERIFIER_QUEUE)
    }
}

impl PinVerifier {
    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("pin-check-{i}"))
                .spawn(move || verifier_thread(&rx))
                .expect("spawn a PIN-check thread");
        }
        PinVerifier { jobs }
    }

    /// The first of `candidates` whose PIN hash `pin` matches. `Err` when
    /// the box is already checking as many PINs as it will.
    pub async fn verify(
        &self,
        pin: String,
        candidates: Vec<StaffEntry>,
    ) -> Result<Option<StaffEntry>, Busy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.jobs.try_send(Job { pin, candidates, reply }) {
            Ok(()) => answer.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

#[derive(Debug)]
pub struct Busy;

fn verifier_thread(rx: &Mutex<Receiver<Job>>) {
    // Below the door: on a busy box, check-ins and sales get the CPU first
    // (Linux applies nice to the calling thread alone).
    // SAFETY: plain syscalls on this thread's own id.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match rx.lock().expect("PIN job queue").recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let found = job
            .candidates
            .into_iter()
            .find(|s| pin_matches(job.pin.as_bytes(), &s.pin_hash, &mut memory));
        let _ = job.reply.send(found);
    }
}

/// Whether `pin` matches a PHC argon2 hash, computed in `memory` (grown
/// once to the hash's cost and reused, so no allocation per check).
pub fn pin_matches(pin: &[u8], phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(alg), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        tracing::warn!(
            m_cost = params.m_cost(),
            "a staff PIN hash asks for too much memory; it never matches"
        );
        return false;
    }
    let version = hash.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(alg, version, params);
    if argon.hash_password_into_with_memory(pin, salt, &mut out, &mut memory[..]).is_err() {
        return false;
    }
    // Constant time: the comparison must not tell how much matched.
    out.iter()
        .zip(expected.as_bytes())
        .fold(out.len() ^ expected.len(), |acc, (a, b)| acc | (a ^ b) as usize)
        == 0
}

/// What an attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Device(String),
    Addr(IpAddr),
    Staff(String),
}

#[derive(Default, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Millis,
    in_flight: u32,
    last: Millis,
}

#[derive(Default)]
pub struct SignInGuard {
    records: Mutex<HashMap<Key, Record>>,
}

/// An attempt admitted by the guard: counted as a failure until it is
/// shown to be a success. Dropping it unresolved (the check never ran)
/// takes the count back.
pub struct Attempt<'a> {
    guard: &'a SignInGuard,
    keys: Vec<Key>,
    resolved: bool,
}

fn wait_error(secs: i64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many wrong PINs from here: wait {secs} s, or ask a supervisor for your PIN"),
    );
    e.retry_after_secs = Some(secs as u64);
    e
}

impl SignInGuard {
    /// Admits an attempt against `keys` (the device first, if any) or says
    /// how long to wait. The attempt is counted now, before it is checked.
    pub fn begin(&self, keys: Vec<Key>, now: Millis) -> Result<Attempt<'_>, ApiError> {
        let mut map = self.records.lock().expect("sign-in guard");
        if map.len() > MAX_TRACKED / 2 {
            map.retain(|_, r| {
                r.in_flight > 0 || r.locked_until > now || now - r.last < FORGET_AFTER_MS
            });
        }
        // A device with a clean record is judged by that record alone.
        let clean_device = matches!(keys.first(), Some(Key::Device(_)))
            && keys.first().and_then(|k| map.get(k)).is_none_or(|r| r.failures == 0);
        for (i, k) in keys.iter().enumerate() {
            let r = map.get(k).copied().unwrap_or_default();
            let own = i == 0 || !clean_device;
            if own && r.locked_until > now {
                return Err(wait_error((r.locked_until - now + 999) / 1000));
            }
            let cap = match k {
                Key::Device(_) | Key::Staff(_) => 1,
                Key::Addr(_) => IN_FLIGHT_PER_ADDR,
            };
            if matches!(k, Key::Device(_) | Key::Addr(_)) && r.in_flight >= cap {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "sign_in_in_progress",
                    "a sign-in from this device is already being checked: wait for its answer",
                ));
            }
        }
        if keys.iter().any(|k| !map.contains_key(k)) && map.len() >= MAX_TRACKED {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the box is refusing many sign-ins right now: try again in a minute",
            );
            e.retry_after_secs = Some(60);
            return Err(e);
        }
        for k in &keys {
            let r = map.entry(k.clone()).or_default();
            r.failures += 1;
            r.in_flight += 1;
            r.last = now;
        }
        Ok(Attempt { guard: self, keys, resolved: false })
    }

    #[cfg(test)]
    fn failures(&self, k: &Key) -> u32 {
        self.records.lock().unwrap().get(k).map(|r| r.failures).unwrap_or(0)
    }
}

impl Attempt<'_> {
    /// The PIN was right: every key starts afresh.
    pub fn succeeded(mut self) {
        let mut map = self.guard.records.lock().expect("sign-in guard");
        for k in &self.keys {
            map.remove(k);
        }
        self.resolved = true;
    }

    /// The PIN was wrong: its failure stands, and past the free ones each
    /// key waits 1, 2, 4… seconds (at most five minutes).
    pub fn failed(mut self, now: Millis) {
        let mut map = self.guard.records.lock().expect("sign-in guard");
        for k in &self.keys {
            if let Some(r) = map.get_mut(k) {
                r.in_flight = r.in_flight.saturating_sub(1);
                if r.failures >= FREE_FAILURES {
                    let secs = (1i64 << (r.failures - FREE_FAILURES).min(16)).min(MAX_LOCK_SECS);
                    r.locked_until = r.locked_until.max(now + secs * 1000);
                }
            }
        }
        self.resolved = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let mut map = self.guard.records.lock().expect("sign-in guard");
        for k in &self.keys {
            if let Some(r) = map.get_mut(k) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.failures = r.failures.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: &str) -> Key {
        Key::Device(n.into())
    }
    fn addr(n: u8) -> Key {
        Key::Addr(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn concurrent_attempts_from_one_device_are_refused_and_each_counts_before_its_check() {
        let g = SignInGuard::default();
        let a = g.begin(vec![dev("d1"), addr(1)], 0).unwrap();
        assert_eq!(g.failures(&dev("d1")), 1, "counted before the check");
        assert_eq!(
            g.begin(vec![dev("d1"), addr(1)], 0).err().expect("one at a time").code,
            "sign_in_in_progress"
        );
        a.failed(0);
        let b = g.begin(vec![dev("d1"), addr(1)], 0).unwrap();
        drop(b);
        assert_eq!(g.failures(&dev("d1")), 1, "an attempt never checked does not count");
    }

    #[test]
    fn a_device_backs_off_after_its_free_failures_and_a_right_pin_clears_it() {
        let g = SignInGuard::default();
        for i in 0..FREE_FAILURES {
            g.begin(vec![dev("d1"), addr(1)], i as i64).unwrap().failed(i as i64);
        }
        let e = g.begin(vec![dev("d1"), addr(1)], 10).err().expect("locked");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(g.begin(vec![dev("d1"), addr(1)], 1_010).is_ok(), "the first wait is a second");
        let mut now = 2_000;
        for _ in 0..20 {
            now += 400_000;
            g.begin(vec![dev("d1"), addr(1)], now).unwrap().failed(now);
        }
        let secs =
            g.begin(vec![dev("d1"), addr(1)], now).err().expect("locked").retry_after_secs.unwrap();
        assert_eq!(secs, MAX_LOCK_SECS as u64, "waits are capped");
        g.begin(vec![dev("d1"), addr(1)], now + 300_000).unwrap().succeeded();
        assert!(g.begin(vec![dev("d1"), addr(1)], now + 300_000).is_ok());
    }

    #[test]
    fn wrong_pins_elsewhere_never_lock_out_a_clean_paired_device() {
        let g = SignInGuard::default();
        let staff = Key::Staff("Sam".into());
        // Thirty wrong PINs for Sam from six devices on six addresses...
        for i in 0..30u8 {
            let d = format!("bad{}", i % 6);
            if let Ok(a) = g.begin(vec![dev(&d), addr(i % 6), staff.clone()], 1000) {
                a.failed(1000);
            }
        }
        // ...and from Sam's own address, too.
        for _ in 0..10 {
            if let Ok(a) = g.begin(vec![addr(9)], 1000) {
                a.failed(1000);
            }
        }
        assert!(
            g.begin(vec![dev("bad0"), addr(0), staff.clone()], 1000).is_err(),
            "the guessing devices wait"
        );
        let ok = g.begin(vec![dev("sams-phone"), addr(9), staff.clone()], 1000);
        assert!(ok.is_ok(), "Sam's clean phone is not locked by others' failures");
    }

    #[test]
    fn memory_stays_bounded_with_endless_new_addresses() {
        let g = SignInGuard::default();
        let mut refused = 0;
        for i in 0..(MAX_TRACKED as u32 * 2) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(i as u128 + 1));
            match g.begin(vec![Key::Addr(ip)], 0) {
                Ok(a) => a.failed(0),
                Err(_) => refused += 1,
            }
        }
        assert!(g.records.lock().unwrap().len() <= MAX_TRACKED);
        assert!(refused > 0);
    }

    #[test]
    fn pins_are_checked_against_argon2_hashes_with_reused_memory() {
        let phc = crate::organiser::demo::hash_pin("1234");
        let mut mem = Vec::new();
        assert!(pin_matches(b"1234", &phc, &mut mem));
        let grown = mem.len();
        assert!(!pin_matches(b"1235", &phc, &mut mem));
        assert_eq!(mem.len(), grown, "no second buffer");
        assert!(!pin_matches(b"1234", "not a hash", &mut mem));
    }
}
