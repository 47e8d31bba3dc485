//! The Debian package on a real Debian 12 with systemd as PID 1: a
//! throwaway QEMU virtual machine (tests/vm/debian-image: Debian's cloud
//! kernel, a root file system from Debian's packages, cached outside the
//! clone, run with snapshot=on so every run starts from the same disk).
//! The package goes in on a second disk and is installed with dpkg as an
//! operator would; the test drives the guest through a control agent on
//! a virtio serial port and reaches the box over HTTPS through QEMU's port
//! forward on 127.0.0.1, as a phone on the venue's Wi-Fi would.

mod common;

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A booted guest: QEMU, its console log and the agent's socket.
struct Vm {
    qemu: Child,
    ctl: BufReader<UnixStream>,
    console: PathBuf,
    /// The host's end of the forward to the guest's HTTPS port 8443.
    https_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.console).unwrap_or_default();
            let tail: String =
                log.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
            eprintln!("--- guest console (end) ---\n{tail}");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Vm {
    /// Boots the image with `disk` (an ext4 image) as /dev/vdb and waits
    /// for the agent to answer.
    fn boot(image: &Path, disk: &Path) -> Vm {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ctl.sock");
        let console = dir.path().join("console.log");
        let https_port = free_port();
        let qemu = Command::new("qemu-system-x86_64")
            // Software emulation: the same on every machine, KVM or not.
            .args(["-accel", "tcg,thread=multi", "-m", "1024", "-smp", "2"])
            .args(["-display", "none", "-nodefaults", "-no-reboot"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.img"))
            .args(["-append", "root=/dev/vda rw console=ttyS0 panic=-1"])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,snapshot=on",
                image.join("root.img").display()
            ))
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw,readonly=on", disk.display()))
            // restrict=on: the guest reaches nothing; only the forward comes in.
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{https_port}-10.0.2.15:8443"
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=ctl,path={},server=on,wait=off", sock.display()))
            .args(["-device", "virtserialport,chardev=ctl,name=ctl"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (tests/vm/debian-image installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("QEMU's control socket: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut vm = Vm { qemu, ctl: BufReader::new(stream), console, https_port, _dir: dir };
        // The agent starts with multi-user.target; until then the port is
        // closed in the guest and what is sent is not read. Wait for the
        // login prompt, then for an answer.
        let deadline = Instant::now() + Duration::from_secs(300);
        while !std::fs::read_to_string(&vm.console).unwrap_or_default().contains("login:") {
            assert!(Instant::now() < deadline, "the guest did not boot in 300 s");
            assert!(vm.qemu.try_wait().unwrap().is_none(), "QEMU exited");
            std::thread::sleep(Duration::from_millis(250));
        }
        vm.ctl.get_ref().set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        assert_eq!(vm.sh("echo up").1.trim(), "up");
        vm
    }

    /// Runs `cmd` with bash as root in the guest: exit status and output.
    fn sh(&mut self, cmd: &str) -> (i32, String) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!("{}\n", b64.encode(cmd));
        self.ctl.get_mut().write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        self.ctl.read_line(&mut answer).unwrap_or_else(|e| panic!("agent, running `{cmd}`: {e}"));
        let (rc, out) = answer.trim_end().split_once(' ').unwrap_or((answer.trim_end(), ""));
        let out = String::from_utf8_lossy(&b64.decode(out).unwrap()).into_owned();
        (rc.parse().unwrap(), out)
    }

    /// Runs `cmd`, which must succeed; its output.
    fn ok(&mut self, cmd: &str) -> String {
        let (rc, out) = self.sh(cmd);
        assert_eq!(rc, 0, "`{cmd}` failed in the guest:\n{out}");
        out
    }

    /// Waits (up to `secs`) until `cmd` succeeds in the guest.
    fn until(&mut self, secs: u64, cmd: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (rc, out) = self.sh(cmd);
            if rc == 0 {
                return out;
            }
            assert!(Instant::now() < deadline, "`{cmd}` still fails after {secs} s:\n{out}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn show(&mut self, property: &str) -> String {
        self.ok(&format!("systemctl show -p {property} --value venuebox")).trim().to_string()
    }
}

/// The image directory (built on first use, about a minute with a warm
/// apt mirror; then cached).
fn image() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/debian-image");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "tests/vm/debian-image failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap())
}

/// An ext4 image holding the package, for the guest's /dev/vdb.
fn package_disk(dir: &Path) -> PathBuf {
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    common::deb::build(&files.join("venuebox.deb"), true);
    let disk = dir.join("package.img");
    let out = Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&files)
        .arg(&disk)
        .arg("256M")
        .output()
        .unwrap();
    assert!(out.status.success(), "mke2fs: {}", String::from_utf8_lossy(&out.stderr));
    disk
}

/// A phone on the LAN that trusts the box's CA (read from the guest).
fn phone(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_runs_under_systemd_survives_kills_and_stalls_and_stops_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let image = image();
    let disk = package_disk(work.path());
    let mut vm = Vm::boot(&image, &disk);

    // Install as an operator would: dpkg, no network in the guest.
    vm.ok("mkdir -p /mnt/pkg && mount -o ro /dev/vdb /mnt/pkg");
    let install = vm.ok("dpkg -i /mnt/pkg/venuebox.deb 2>&1");
    assert!(install.contains("Setting up venuebox"), "{install}");
    let id = vm.ok("id venuebox");
    assert!(id.contains("(venuebox)") && id.contains("(gpio)"), "the service user: {id}");
    // Enabled and started by the package; Type=notify: active = READY=1 sent.
    assert_eq!(vm.ok("systemctl is-enabled venuebox").trim(), "enabled");
    vm.until(120, "systemctl is-active venuebox");
    let warn = vm.ok("journalctl -u venuebox -p warning -o cat --no-pager");
    assert!(warn.contains("no event loaded"), "a warning reaches journald as a warning: {warn}");

    // The operator's settings: the demo event (a conffile edit), then restart.
    vm.ok("echo 'demo = true' >> /etc/venuebox/venuebox.toml && systemctl restart venuebox");
    vm.until(120, "systemctl is-active venuebox");
    let status = vm.show("StatusText");
    assert!(status.contains("evt-demo") && status.contains("inside"), "STATUS=: {status}");
    assert_eq!(vm.ok("stat -c '%U %a' /var/lib/venuebox").trim(), "venuebox 700");

    // A phone on the LAN: pair, sign in, check a ticket in, over HTTPS
    // through the port forward.
    let ca = vm.ok("cat /var/lib/venuebox/tls/ca.pem");
    let tickets = vm.ok("cat /var/lib/venuebox/demo/tickets.csv");
    let ticket = tickets.lines().nth(1).unwrap().split(',').nth(2).unwrap().to_string();
    let code = vm
        .ok("runuser -u venuebox -- venuebox pair --code-only --data-dir /var/lib/venuebox")
        .trim()
        .to_string();
    let phone = phone(&ca);
    let base = format!("https://localhost:{}", vm.https_port);
    let token = common::binary::phone_session(&phone, &base, &code, "1111").await;
    let url = format!("{base}/api/v1/checkins");
    let scan = |nonce: &str| {
        let body = json!({"code": ticket, "gate": "main", "nonce": nonce});
        common::binary::post_json(&phone, &url, Some(&token), body)
    };
    let first = scan("vm-1").await;
    assert_eq!(first["verdict"], "admit", "{first}");

    // Killed outright: systemd restarts it and the check-in is still there.
    let pid = vm.show("MainPID");
    vm.ok("systemctl kill -s KILL venuebox");
    vm.until(120, &format!("[ \"$(systemctl show -p MainPID --value venuebox)\" != {pid} ] && systemctl is-active venuebox"));
    assert_eq!(vm.show("NRestarts"), "1");
    let again = scan("vm-2").await;
    assert_eq!(again["reason"], "already_checked_in", "{again}");

    // A writer that stops answering (the test-only switch): no more
    // watchdog pings, systemd kills and restarts the box.
    vm.ok(
        "mkdir -p /etc/systemd/system/venuebox.service.d && printf '[Service]\\nExecStart=\\n\
         ExecStart=/usr/bin/venuebox serve --data-dir /var/lib/venuebox --fault-stall-writer-after 5\\n' \
         > /etc/systemd/system/venuebox.service.d/stall.conf && systemctl daemon-reload && systemctl restart venuebox",
    );
    vm.until(120, "systemctl is-active venuebox");
    let since = Instant::now();
    vm.until(120, "journalctl -u venuebox -o cat --no-pager | grep -q 'Watchdog timeout'");
    let watchdog_after = since.elapsed();
    vm.until(60, "[ $(systemctl show -p NRestarts --value venuebox) -ge 2 ]");
    vm.ok("rm /etc/systemd/system/venuebox.service.d/stall.conf && systemctl daemon-reload && systemctl restart venuebox");
    vm.until(120, "systemctl is-active venuebox");
    let after = scan("vm-3").await;
    assert_eq!(after["reason"], "already_checked_in", "still there after the watchdog: {after}");

    // The hardening as systemd itself scores it on the running unit.
    let security = vm.ok("systemd-analyze security --no-pager venuebox.service");
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for venuebox.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{security}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{security}");

    // A clean stop: SIGTERM, exit 0, well within TimeoutStopSec.
    let t = Instant::now();
    vm.ok("systemctl stop venuebox");
    let stop = t.elapsed();
    assert_eq!(vm.show("Result"), "success");
    assert_eq!(vm.show("ExecMainStatus"), "0");
    let journal = vm.ok("journalctl -u venuebox -o cat --no-pager");
    assert!(!journal.contains('\u{1b}'), "no escape codes in the journal:\n{journal}");
    assert!(!journal.contains("timed out"), "{journal}");
    eprintln!(
        "debian VM: watchdog restart {:.1} s after the stall switch was set, stop took {:.1} s, exposure {exposure}",
        watchdog_after.as_secs_f64(),
        stop.as_secs_f64()
    );
}
