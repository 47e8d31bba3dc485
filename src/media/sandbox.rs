//! Untrusted media decoded by C code (libjpeg-turbo's `djpeg`, libheif's
//! `heif-thumbnailer`, `ffmpeg`) runs here: in a child process the box
//! kills on a wall-clock limit, under resource limits it cannot raise, with
//! no network and nothing to write but its own output.
//!
//! - `setrlimit`: address space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`:
//!   the kernel kills it past them), file size (`RLIMIT_FSIZE`: what it may
//!   write, at most its output file), open files, no core dumps.
//! - No new privileges (`PR_SET_NO_NEW_PRIVS`), the lowest CPU priority, an
//!   empty environment, and a seccomp filter that refuses `socket(2)`: it
//!   can reach nothing, whatever the file makes it do.
//! - Its standard output is read up to a bound and its stderr is kept
//!   short, for the log; past the wall-clock limit it is killed (`SIGKILL`).
//!
//! A failure of any kind is an answer ("no preview"), never the box's
//! problem: the child's memory is not the box's, and its crash is its own.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a child may use.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Address space, bytes.
    pub memory: u64,
    /// CPU time, seconds (the kernel's own limit).
    pub cpu_secs: u64,
    /// Wall clock: killed past this.
    pub wall: Duration,
    /// Largest standard output taken.
    pub output: usize,
    /// Largest file it may write (its output file, if it needs one).
    pub file: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 512 << 20,
            cpu_secs: 10,
            wall: Duration::from_secs(15),
            output: 8 << 20,
            file: 0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("cannot start {0}")]
    Spawn(String),
    #[error("{program} ran past its time limit and was killed")]
    Timeout { program: String },
    #[error("{program} wrote more than its output limit")]
    TooLarge { program: String },
    #[error("{program} failed ({status}): {stderr}")]
    Failed { program: String, status: String, stderr: String },
}

/// The seccomp filter: `socket(2)` fails with `EACCES`, everything else
/// runs. A classic BPF program over `struct seccomp_data`.
fn no_sockets() -> Vec<libc::sock_filter> {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    let stmt = |code: u16, k: u32| libc::sock_filter { code, jt: 0, jf: 0, k };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    vec![
        // seccomp_data.arch at offset 4: another ABI is refused outright.
        stmt(LD_W_ABS, 4),
        jump(JEQ, ARCH, 1, 0),
        stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
        // seccomp_data.nr at offset 0.
        stmt(LD_W_ABS, 0),
        jump(JEQ, libc::SYS_socket as u32, 0, 1),
        stmt(RET, libc::SECCOMP_RET_ERRNO | (libc::EACCES as u32)),
        stmt(RET, libc::SECCOMP_RET_ALLOW),
    ]
}

/// In the child, between fork and exec: only async-signal-safe calls.
fn confine(limits: &Limits, filter: &[libc::sock_filter], parent: u32) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let lim = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit on this process with a valid struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, limits.memory)?;
    set(libc::RLIMIT_CPU, limits.cpu_secs)?;
    set(libc::RLIMIT_FSIZE, limits.file)?;
    set(libc::RLIMIT_NOFILE, 64)?;
    set(libc::RLIMIT_CORE, 0)?;
    // SAFETY: plain syscalls on this process; the filter outlives the call.
    unsafe {
        // A child dies with the box: a decoder orphaned by a crash would
        // run on to its CPU limit with no one to kill it at the wall clock.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
        if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What a child answered and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ran {
    pub stdout: Vec<u8>,
    /// Its CPU time, user and system.
    pub cpu: Duration,
    /// Its peak resident memory, KiB.
    pub peak_kib: u64,
}

/// How a reaped child ended, from its `wait4` status.
fn ended(status: libc::c_int) -> Result<(), String> {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            code => Err(format!("exit status {code}")),
        }
    } else if libc::WIFSIGNALED(status) {
        Err(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Err(format!("wait status {status}"))
    }
}

/// Runs `program` with `args`, `stdin` as its input (a file opened
/// read-only, or nothing), and returns its standard output.
pub fn run(
    program: &Path,
    args: &[OsString],
    stdin: Option<std::fs::File>,
    limits: &Limits,
) -> Result<Ran, SandboxError> {
    let name = program
        .file_name()
        .map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into_owned());
    let filter = no_sockets();
    let lim = *limits;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: `confine` makes only async-signal-safe calls (setrlimit,
    // setpriority, prctl, getppid) and touches no lock or allocation.
    unsafe {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        cmd.pre_exec(move || confine(&lim, &filter, parent));
    }
    let mut child = cmd.spawn().map_err(|e| SandboxError::Spawn(format!("{name}: {e}")))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let cap = limits.output;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut out).take(cap as u64 + 1).read_to_end(&mut buf);
        // Whatever is left is drained, so the child never blocks on a
        // full pipe while it is being killed.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
        r.map(|_| buf)
    });
    let errs = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut err).take(2048).read_to_end(&mut buf);
        let _ = std::io::copy(&mut err, &mut std::io::sink());
        String::from_utf8_lossy(&buf).trim().to_string()
    });
    let deadline = Instant::now() + limits.wall;
    // Reaped with wait4, for its own CPU time and peak memory; `child` is
    // not touched again once reaped (its pid may be reused).
    let pid = child.id() as libc::pid_t;
    let reaped = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills both.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with pointers to our locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break Some((status, usage));
        }
        if r < 0 || Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let Some((status, usage)) = reaped else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let _ = errs.join();
        return Err(SandboxError::Timeout { program: name });
    };
    let out = reader.join().ok().and_then(Result::ok).unwrap_or_default();
    let stderr = errs.join().unwrap_or_default();
    if out.len() > cap {
        return Err(SandboxError::TooLarge { program: name });
    }
    if let Err(status) = ended(status) {
        return Err(SandboxError::Failed { program: name, status, stderr });
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Ran {
        stdout: out,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_kib: usage.ru_maxrss as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limits: &Limits) -> Result<Vec<u8>, SandboxError> {
        run(Path::new("/bin/sh"), &["-c".into(), script.into()], None, limits).map(|r| r.stdout)
    }

    #[test]
    fn a_child_answers_with_its_output_and_what_it_cost() {
        assert_eq!(sh("printf hello", &Limits::default()).unwrap(), b"hello");
        let script = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done";
        let ran =
            run(Path::new("/bin/sh"), &["-c".into(), script.into()], None, &Limits::default())
                .unwrap();
        assert!(ran.cpu > Duration::from_millis(5) && ran.peak_kib > 100, "{ran:?}");
        let e = sh("exit 3", &Limits::default()).unwrap_err();
        assert!(
            matches!(&e, SandboxError::Failed { status, .. } if status == "exit status 3"),
            "{e:?}"
        );
    }

    #[test]
    fn a_child_that_runs_too_long_is_killed_at_the_wall_clock_limit() {
        let limits = Limits { wall: Duration::from_millis(300), ..Limits::default() };
        let t = Instant::now();
        let e = sh("while :; do :; done", &limits).unwrap_err();
        assert!(matches!(e, SandboxError::Timeout { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_child_that_writes_too_much_is_cut_off() {
        let limits = Limits { output: 1000, ..Limits::default() };
        let e = sh("head -c 100000 /dev/zero", &limits).unwrap_err();
        assert!(matches!(e, SandboxError::TooLarge { .. }), "{e:?}");
    }

    #[test]
    fn a_child_cannot_allocate_past_its_memory_or_write_files_or_open_sockets() {
        let limits = Limits { memory: 64 << 20, cpu_secs: 3, ..Limits::default() };
        // The kernel holds it to its limits, which it cannot raise.
        let seen =
            sh("ulimit -v; ulimit -t; ulimit -f; ulimit -v unlimited || echo refused", &limits);
        assert_eq!(String::from_utf8_lossy(&seen.unwrap()), "65536\n3\n0\nrefused\n");
        // No file may be written (RLIMIT_FSIZE 0).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        let _ = sh(&format!("echo data > {}", f.display()), &Limits::default());
        assert_eq!(std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0), 0);
        // socket(2) is refused: bash's /dev/tcp cannot reach a port that
        // listens (and would, unconfined).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo reached");
        let e =
            run(Path::new("/bin/bash"), &["-c".into(), script.into()], None, &Limits::default());
        assert!(e.is_err(), "{e:?}");
    }

    #[test]
    fn a_child_gets_no_environment_of_the_box() {
        std::env::set_var("VENUEBOX_SECRET_FOR_TEST", "s3cret");
        let out = sh("env", &Limits::default()).unwrap();
        assert!(!String::from_utf8_lossy(&out).contains("s3cret"));
    }
}
