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
use crate::domain::error_code::ErrorCode;
use crate::domain::manifest::StaffEntry;
use crate::domain::time::Millis;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use axum::http::StatusCode;
use std::collections::{HashMap, HashSet};
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
/// Longest wait for a device or an address, in seconds; waits double from 1 s.
const MAX_LOCK_SECS: i64 = 300;
/// Longest wait for a staff member named by devices that never signed in
/// as them: an hour, so a named PIN is worth ~30 guesses a day.
const MAX_STAFF_LOCK_SECS: i64 = 3600;
/// Attempts from one address verified at once.
const IN_FLIGHT_PER_ADDR: u32 = 2;
/// Addresses tracked; past this the idlest is forgotten (addresses only
/// throttle refusals that check nothing, so forgetting one gives nothing).
const MAX_ADDRS: usize = 4096;
/// An entry untouched this long (and not locked) starts afresh.
const FORGET_AFTER_MS: Millis = 15 * 60_000;
/// Wrong PINs a paired device may send in all before it loses its pairing.
pub const REVOKE_AFTER: u32 = 20;
/// Box-wide wrong PINs checked against staff the device never signed in
/// as: a bucket of this many...
const BOX_WRONG_PINS: f64 = 20.0;
/// ...refilled by one every this many milliseconds (two an hour). With 20
/// staff on 4-digit PINs, finding one takes ~10 days of guessing on
/// average, from any number of devices.
const BOX_REFILL_MS: Millis = 30 * 60_000;

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

#[derive(Default, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Millis,
    in_flight: u32,
    last: Millis,
}

impl Record {
    /// Forgets failures that are old and not holding a lock.
    fn fresh(&mut self, now: Millis) {
        if self.in_flight == 0 && self.locked_until <= now && now - self.last >= FORGET_AFTER_MS {
            self.failures = 0;
        }
    }

    fn lock_after_failure(&mut self, now: Millis, max_secs: i64) {
        if self.failures >= FREE_FAILURES {
            let secs = (1i64 << (self.failures - FREE_FAILURES).min(16)).min(max_secs);
            self.locked_until = self.locked_until.max(now + secs * 1000);
        }
    }
}

/// Who is trying a PIN.
#[derive(Clone, Debug, Default)]
pub struct Who {
    /// The paired device's id; `None` for a refusal that checks nothing
    /// (an unpaired device) or a pairing code.
    pub device: Option<String>,
    pub addr: Option<IpAddr>,
    /// The staff member named in the request, if any (a real one: names
    /// not in the manifest are never tracked).
    pub named: Option<String>,
}

#[derive(Default)]
struct GuardState {
    devices: HashMap<String, Record>,
    addrs: HashMap<IpAddr, Record>,
    staff: HashMap<String, Record>,
    /// (device, staff) pairs that signed in (or approved) successfully:
    /// that device may always try that person's PIN, so nobody can lock
    /// staff out of their own phone.
    trusted: HashSet<(String, String)>,
    /// Wrong PINs per device since the box started; never reset by a
    /// success. Shown to supervisors; past [`REVOKE_AFTER`] the device is
    /// unpaired.
    wrong_total: HashMap<String, u32>,
    /// Tokens left in the box-wide bucket, and when it was last filled.
    bucket: f64,
    filled_at: Millis,
}

/// Counts PIN attempts per device, address, named staff member and box,
/// before they are checked.
pub struct SignInGuard {
    state: Mutex<GuardState>,
}

impl Default for SignInGuard {
    fn default() -> Self {
        SignInGuard {
            state: Mutex::new(GuardState { bucket: BOX_WRONG_PINS, ..GuardState::default() }),
        }
    }
}

/// An attempt admitted by the guard: counted as a failure until it is
/// shown to be a success. Dropping it unresolved (the check never ran)
/// takes the count back.
pub struct Attempt<'a> {
    guard: &'a SignInGuard,
    who: Who,
    /// The candidates the PIN may be checked against.
    pub allowed: Vec<String>,
    /// Whether this attempt took a token from the box-wide bucket.
    took_token: bool,
    /// Whether it counted against the named staff member (a device that
    /// signed in as them before does not).
    counted_staff: bool,
    resolved: bool,
}

/// What a wrong PIN did to its device.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterWrong {
    Counted,
    /// The device passed [`REVOKE_AFTER`]: unpair it.
    Revoke,
}

fn wait_error(secs: i64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
        format!("too many wrong PINs from here: wait {secs} s, or ask a supervisor for your PIN"),
    );
    e.retry_after_secs = Some(secs as u64);
    e
}

fn box_locked_error(secs: i64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::PinsLocked,
        format!("too many wrong PINs on the box lately: sign in on a phone you used before, ask a supervisor to clear the lock, or wait {} min", (secs + 59) / 60),
    );
    e.retry_after_secs = Some(secs as u64);
    e
}

impl GuardState {
    fn refill(&mut self, now: Millis) {
        if now > self.filled_at {
            let add = (now - self.filled_at) as f64 / BOX_REFILL_MS as f64;
            self.bucket = (self.bucket + add).min(BOX_WRONG_PINS);
        }
        self.filled_at = now;
    }

    /// Keeps the address table bounded without ever refusing: the idlest
    /// address not in flight is forgotten.
    fn room_for_addr(&mut self, addr: IpAddr, now: Millis) {
        if self.addrs.len() < MAX_ADDRS || self.addrs.contains_key(&addr) {
            return;
        }
        self.addrs.retain(|_, r| {
            r.in_flight > 0 || r.locked_until > now || now - r.last < FORGET_AFTER_MS
        });
        if self.addrs.len() >= MAX_ADDRS {
            let idlest =
                self.addrs.iter().filter(|(_, r)| r.in_flight == 0).min_by_key(|(_, r)| r.last);
            if let Some(k) = idlest.map(|(k, _)| *k) {
                self.addrs.remove(&k);
            }
        }
    }
}

impl SignInGuard {
    /// Admits an attempt by `who` to match a PIN among `candidates` (staff
    /// names; empty for a pairing code or an unpaired device) or says how
    /// long to wait. The attempt is counted now, before it is checked.
    pub fn begin(
        &self,
        who: Who,
        candidates: &[String],
        now: Millis,
    ) -> Result<Attempt<'_>, ApiError> {
        let mut g = self.state.lock().expect("sign-in guard");
        g.refill(now);
        if let Some(a) = who.addr {
            g.room_for_addr(a, now);
        }
        if let Some(d) = &who.device {
            let r = g.devices.entry(d.clone()).or_default();
            r.fresh(now);
            if r.locked_until > now {
                return Err(wait_error((r.locked_until - now + 999) / 1000));
            }
            if r.in_flight >= 1 {
                return Err(in_progress());
            }
        }
        if let Some(a) = who.addr {
            let r = g.addrs.entry(a).or_default();
            r.fresh(now);
            // A paired device is judged by its own record, not by what
            // guests at its address did.
            if who.device.is_none() && r.locked_until > now {
                return Err(wait_error((r.locked_until - now + 999) / 1000));
            }
            if r.in_flight >= IN_FLIGHT_PER_ADDR {
                return Err(in_progress());
            }
        }
        let trusted = |g: &GuardState, name: &str| {
            who.device.as_ref().is_some_and(|d| g.trusted.contains(&(d.clone(), name.to_string())))
        };
        let restricted = g.bucket < 1.0;
        let mut allowed = Vec::with_capacity(candidates.len());
        let mut untrusted = false;
        let mut wait: Option<i64> = None;
        for name in candidates {
            if trusted(&g, name) {
                allowed.push(name.clone());
                continue;
            }
            if restricted {
                let secs = ((1.0 - g.bucket) * BOX_REFILL_MS as f64 / 1000.0).ceil() as i64;
                wait = Some(wait.map_or(secs, |w| w.min(secs)));
                continue;
            }
            let locked = match (&who.named, g.staff.get_mut(name)) {
                (Some(_), Some(r)) => {
                    r.fresh(now);
                    (r.locked_until > now).then(|| (r.locked_until - now + 999) / 1000)
                }
                _ => None,
            };
            match locked {
                Some(secs) => wait = Some(wait.map_or(secs, |w| w.min(secs))),
                None => {
                    untrusted = true;
                    allowed.push(name.clone());
                }
            }
        }
        if !candidates.is_empty() && allowed.is_empty() {
            let secs = wait.unwrap_or(1);
            return Err(if restricted { box_locked_error(secs) } else { wait_error(secs) });
        }
        let took_token = untrusted;
        if took_token {
            g.bucket -= 1.0;
        }
        if let Some(d) = &who.device {
            let r = g.devices.get_mut(d).expect("entered above");
            r.failures += 1;
            r.in_flight += 1;
            r.last = now;
        }
        if let Some(a) = who.addr {
            let r = g.addrs.get_mut(&a).expect("entered above");
            if who.device.is_none() {
                r.failures += 1;
            }
            r.in_flight += 1;
            r.last = now;
        }
        let staff =
            who.named.as_ref().filter(|n| candidates.contains(n) && !trusted(&g, n)).cloned();
        if let Some(n) = &staff {
            let r = g.staff.entry(n.clone()).or_default();
            r.failures += 1;
            r.last = now;
        }
        let counted_staff = staff.is_some();
        Ok(Attempt { guard: self, who, allowed, took_token, counted_staff, resolved: false })
    }

    /// Wrong PINs each device sent since the box started.
    pub fn wrong_pins(&self, device: &str) -> u32 {
        self.state.lock().expect("sign-in guard").wrong_total.get(device).copied().unwrap_or(0)
    }

    /// A supervisor's "clear the PIN locks": the box-wide bucket is full
    /// again and named staff are no longer held back. Devices keep their
    /// own records (a guessing device stays slowed, and is still unpaired
    /// past its limit).
    pub fn clear_locks(&self, now: Millis) {
        let mut g = self.state.lock().expect("sign-in guard");
        g.bucket = BOX_WRONG_PINS;
        g.filled_at = now;
        g.staff.clear();
    }

    /// A device was unpaired: its records go.
    pub fn forget_device(&self, device: &str) {
        let mut g = self.state.lock().expect("sign-in guard");
        g.devices.remove(device);
        g.trusted.retain(|(d, _)| d != device);
    }

    #[cfg(test)]
    fn failures(&self, d: &str) -> u32 {
        self.state.lock().unwrap().devices.get(d).map(|r| r.failures).unwrap_or(0)
    }
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::SignInInProgress,
        "a sign-in from this device is already being checked: wait for its answer",
    )
}

impl Attempt<'_> {
    /// Takes this attempt's counts back (it was not a wrong PIN).
    fn undo(&mut self, g: &mut GuardState) {
        if let Some(d) = &self.who.device {
            if let Some(r) = g.devices.get_mut(d) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.failures = r.failures.saturating_sub(1);
            }
        }
        if let Some(a) = self.who.addr {
            if let Some(r) = g.addrs.get_mut(&a) {
                r.in_flight = r.in_flight.saturating_sub(1);
                if self.who.device.is_none() {
                    r.failures = r.failures.saturating_sub(1);
                }
            }
        }
        if let Some(n) = self.who.named.as_ref().filter(|_| self.counted_staff) {
            if let Some(r) = g.staff.get_mut(n) {
                r.failures = r.failures.saturating_sub(1);
            }
        }
        if self.took_token {
            g.bucket = (g.bucket + 1.0).min(BOX_WRONG_PINS);
        }
    }

    /// The PIN was `name`'s: this attempt does not count, and the device
    /// may always try that person's PIN from now on. Earlier failures
    /// stand: a right PIN never wipes another identity's record.
    pub fn succeeded(mut self, name: &str) {
        let mut g = self.guard.state.lock().expect("sign-in guard");
        self.undo(&mut g);
        if let Some(d) = &self.who.device {
            g.trusted.insert((d.clone(), name.to_string()));
        }
        self.resolved = true;
    }

    /// The PIN was wrong: its failure stands, and past the free ones each
    /// key waits 1, 2, 4… seconds (at most five minutes for a device, an
    /// hour for a named staff member).
    pub fn failed(mut self, now: Millis) -> AfterWrong {
        let mut g = self.guard.state.lock().expect("sign-in guard");
        let mut after = AfterWrong::Counted;
        if let Some(d) = &self.who.device {
            if let Some(r) = g.devices.get_mut(d) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.lock_after_failure(now, MAX_LOCK_SECS);
            }
            let total = g.wrong_total.entry(d.clone()).or_default();
            *total += 1;
            if *total >= REVOKE_AFTER {
                after = AfterWrong::Revoke;
            }
        }
        if let Some(a) = self.who.addr {
            if let Some(r) = g.addrs.get_mut(&a) {
                r.in_flight = r.in_flight.saturating_sub(1);
                r.lock_after_failure(now, MAX_LOCK_SECS);
            }
        }
        if let Some(n) = self.who.named.as_ref().filter(|_| self.counted_staff) {
            if let Some(r) = g.staff.get_mut(n) {
                r.lock_after_failure(now, MAX_STAFF_LOCK_SECS);
            }
        }
        self.resolved = true;
        after
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let mut g = self.guard.state.lock().expect("sign-in guard");
        self.undo(&mut g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(device: &str, addr: u8) -> Who {
        Who { device: Some(device.into()), addr: Some(IpAddr::from([10, 0, 0, addr])), named: None }
    }
    fn naming(mut w: Who, name: &str) -> Who {
        w.named = Some(name.into());
        w
    }
    fn staff() -> Vec<String> {
        ["Dana", "Sam", "Alex"].map(String::from).to_vec()
    }

    #[test]
    fn concurrent_attempts_from_one_device_are_refused_and_each_counts_before_its_check() {
        let g = SignInGuard::default();
        let a = g.begin(on("d1", 1), &staff(), 0).unwrap();
        assert_eq!(g.failures("d1"), 1, "counted before the check");
        assert_eq!(
            g.begin(on("d1", 1), &staff(), 0).err().expect("one at a time").code,
            ErrorCode::SignInInProgress
        );
        a.failed(0);
        let b = g.begin(on("d1", 1), &staff(), 0).unwrap();
        drop(b);
        assert_eq!(g.failures("d1"), 1, "an attempt never checked does not count");
    }

    #[test]
    fn a_device_backs_off_after_its_free_failures_and_waits_are_capped() {
        let g = SignInGuard::default();
        for i in 0..FREE_FAILURES {
            g.begin(on("d1", 1), &staff(), i as i64).unwrap().failed(i as i64);
        }
        let e = g.begin(on("d1", 1), &staff(), 10).err().expect("locked");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(g.begin(on("d1", 1), &staff(), 1_010).is_ok(), "the first wait is a second");
        let mut now = 2_000;
        for _ in 0..10 {
            now += 400_000;
            g.clear_locks(now);
            g.begin(on("d1", 1), &staff(), now).unwrap().failed(now);
        }
        let secs = g.begin(on("d1", 1), &staff(), now).err().expect("locked");
        assert_eq!(secs.retry_after_secs.unwrap(), MAX_LOCK_SECS as u64, "waits are capped");
    }

    /// The walk the issue found: a door phone alternating a guess at the
    /// admin's PIN with its own right PIN. Its right PINs no longer wipe
    /// its record, so it backs off and, past the limit, is unpaired.
    #[test]
    fn a_right_pin_never_wipes_the_guesses_of_the_same_device() {
        let g = SignInGuard::default();
        let mut now = 0;
        let mut guesses = 0;
        let mut revoked = false;
        for _ in 0..100 {
            now += 60_000;
            if let Ok(a) = g.begin(naming(on("door", 1), "Alex"), &["Alex".into()], now) {
                guesses += 1;
                if a.failed(now) == AfterWrong::Revoke {
                    revoked = true;
                    break;
                }
            }
            if let Ok(a) = g.begin(naming(on("door", 1), "Dana"), &["Dana".into()], now) {
                a.succeeded("Dana");
            }
        }
        assert!(revoked, "unpaired after {REVOKE_AFTER} wrong PINs");
        assert_eq!(guesses, REVOKE_AFTER);
        assert_eq!(g.wrong_pins("door"), REVOKE_AFTER);
    }

    /// Many devices each guessing a little: the box-wide bucket empties,
    /// then PINs are checked only against staff a device signed in as
    /// before, so a guessing device learns nothing while every staff
    /// member's own phone still signs in.
    #[test]
    fn guesses_from_many_devices_share_one_box_wide_budget() {
        let g = SignInGuard::default();
        g.begin(on("alex-phone", 9), &staff(), 0).unwrap().succeeded("Alex");
        let mut checked = 0;
        for i in 0..200u32 {
            let d = format!("stolen-{i}");
            if let Ok(a) = g.begin(on(&d, (i % 200) as u8), &staff(), 1000) {
                checked += 1;
                a.failed(1000);
            }
        }
        assert_eq!(checked, BOX_WRONG_PINS as u32, "only the box-wide budget was checked");
        let e = g.begin(on("fresh", 201), &staff(), 1000).err().expect("restricted");
        assert_eq!(e.code, ErrorCode::PinsLocked);
        let own = g.begin(on("alex-phone", 9), &staff(), 1000).unwrap();
        assert_eq!(own.allowed, vec!["Alex".to_string()], "only the PIN it signed in with before");
        own.succeeded("Alex");
        // Two an hour come back; a supervisor can clear it at once.
        let a = g.begin(on("fresh", 201), &staff(), 1000 + BOX_REFILL_MS).unwrap();
        assert_eq!(a.allowed.len(), 3);
        a.failed(1000 + BOX_REFILL_MS);
        assert!(g.begin(on("fresh2", 202), &staff(), 1000 + BOX_REFILL_MS).is_err());
        g.clear_locks(1000 + BOX_REFILL_MS);
        assert!(g.begin(on("fresh2", 202), &staff(), 1000 + BOX_REFILL_MS).is_ok());
    }

    /// A week of the fastest guessing the guard allows against one named
    /// staff member, from as many paired devices as the attacker likes,
    /// checks fewer than 5,000 PINs: half the 4-digit space.
    #[test]
    fn a_week_of_guessing_from_any_devices_cannot_walk_a_four_digit_pin() {
        let g = SignInGuard::default();
        let week = 7 * 24 * 3600 * 1000;
        let (mut now, mut checked, mut device) = (0i64, 0u32, 0u32);
        while now < week {
            match g.begin(naming(on(&format!("d{device}"), 1), "Alex"), &["Alex".into()], now) {
                Ok(a) => {
                    checked += 1;
                    if a.failed(now) == AfterWrong::Revoke {
                        device += 1;
                    }
                }
                Err(e) => now += e.retry_after_secs.unwrap_or(1) as i64 * 1000,
            }
        }
        assert!(checked < 5_000, "{checked} PINs checked in a week");
        assert!(checked < 400, "{checked}");
    }

    #[test]
    fn wrong_pins_elsewhere_never_lock_a_staff_member_out_of_their_own_phone() {
        let g = SignInGuard::default();
        g.begin(naming(on("sams-phone", 9), "Sam"), &["Sam".into()], 0).unwrap().succeeded("Sam");
        for i in 0..30u8 {
            let d = format!("bad{}", i % 6);
            if let Ok(a) = g.begin(naming(on(&d, i % 6), "Sam"), &["Sam".into()], 1000) {
                a.failed(1000);
            }
        }
        for _ in 0..10 {
            let who = Who { addr: Some(IpAddr::from([10, 0, 0, 9])), ..Who::default() };
            if let Ok(a) = g.begin(who, &[], 1000) {
                a.failed(1000);
            }
        }
        assert!(
            g.begin(naming(on("bad0", 0), "Sam"), &["Sam".into()], 1000).is_err(),
            "the guessing devices wait"
        );
        let ok = g.begin(naming(on("sams-phone", 9), "Sam"), &["Sam".into()], 1000);
        assert!(ok.is_ok(), "Sam's own phone is not locked by others' failures");
    }

    /// Endless new addresses (and made-up names, which are never tracked)
    /// keep the table bounded, and a full table refuses nobody.
    #[test]
    fn memory_stays_bounded_and_a_full_table_refuses_nobody() {
        let g = SignInGuard::default();
        for i in 0..(MAX_ADDRS as u32 * 2) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(i as u128 + 1));
            let who = Who { addr: Some(ip), ..Who::default() };
            g.begin(who, &[], 0).expect("never refused for a full table").failed(0);
        }
        assert!(g.state.lock().unwrap().addrs.len() <= MAX_ADDRS);
        assert!(g.begin(on("fresh", 1), &staff(), 0).is_ok());
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
