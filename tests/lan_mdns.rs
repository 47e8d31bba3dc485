//! mDNS on a real (virtual) LAN: the test makes two network namespaces
//! joined by a veth pair, runs the real binary in one, and looks for it
//! from the other with mdns-sd (`venuebox discover`) and with python-
//! zeroconf, an implementation that is not ours (installed from PyPI into
//! target/ on first use). Needs root for `ip netns`, as CI has.

mod common;

use common::netns::ip;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_venuebox");

/// Two namespaces, `a` (10.77.x.1) and `b` (10.77.x.2), joined by a veth
/// pair; removed on drop.
struct Lan {
    a: String,
    b: String,
}

impl Lan {
    fn new() -> Lan {
        let id = std::process::id() % 200;
        let (a, b) = (format!("vbA{id}"), format!("vbB{id}"));
        let _ = Command::new("ip").args(["netns", "del", &a]).output();
        let _ = Command::new("ip").args(["netns", "del", &b]).output();
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        let (va, vb) = (format!("va{id}"), format!("vb{id}"));
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &a]);
        ip(&["link", "set", &vb, "netns", &b]);
        for (ns, dev, addr) in
            [(&a, &va, format!("10.77.{id}.1/24")), (&b, &vb, format!("10.77.{id}.2/24"))]
        {
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up", "multicast", "on"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Lan { a, b }
    }
    fn addr_a(&self) -> String {
        format!("10.77.{}.1", std::process::id() % 200)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

use common::binary::Running;

const ZEROCONF_WATCH: &str = r#"
import json, sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceStateChange
T = "_venuebox._tcp.local."
zc = Zeroconf()
seen = {}
def on_change(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Added or state_change is ServiceStateChange.Updated:
        info = zeroconf.get_service_info(service_type, name, 3000)
        if info and name not in seen:
            seen[name] = True
            props = {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()}
            print(json.dumps({"event": "added", "name": name, "server": info.server, "port": info.port,
                              "addresses": info.parsed_addresses(), "txt": props}), flush=True)
    elif state_change is ServiceStateChange.Removed:
        print(json.dumps({"event": "removed", "name": name}), flush=True)
browser = ServiceBrowser(zc, T, handlers=[on_change])
deadline = time.time() + float(sys.argv[1])
while time.time() < deadline:
    time.sleep(0.1)
zc.close()
"#;

#[test]
fn the_box_is_found_by_mdns_sd_and_by_zeroconf_and_says_goodbye() {
    let zeroconf =
        common::s3::python_deps("pydeps-zeroconf", "import zeroconf", &["zeroconf==0.154.0"]);
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lan.a,
            BIN,
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--https-listen",
            "0.0.0.0:0",
            "--pair-listen",
            "0.0.0.0:0",
        ])
        .args(["--mdns-name", "door-box", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let https_port: u16 = loop {
        let line = lines.next().expect("the box exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("venuebox listening on https://") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id();
    let mut running = Running(child);
    let ca = std::fs::read_to_string(dir.path().join("tls/ca.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
        .unwrap();
    let fp = venuebox::net::tls::fingerprint(&der);

    // Ours, from the other namespace.
    let out = Command::new("ip")
        .args(["netns", "exec", &lan.b, BIN, "discover", "--wait-secs", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("https://door-box.local:{https_port}/")), "{text}");
    for kv in [
        format!("fp={fp}"),
        "event=evt-demo".into(),
        "path=/".into(),
        "role=primary".into(),
        "epoch=1".into(),
        format!("v={}", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.contains(&kv), "{kv} in {text}");
    }
    assert!(text.contains(&lan.addr_a()), "{text}");

    // Not ours: python-zeroconf browses and resolves, then sees the goodbye.
    let mut watch = Command::new("ip")
        .args(["netns", "exec", &lan.b, "python3", "-c", ZEROCONF_WATCH, "20"])
        .env("PYTHONPATH", &zeroconf)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut events = BufReader::new(watch.stdout.take().unwrap()).lines();
    let added: serde_json::Value =
        serde_json::from_str(&events.next().expect("zeroconf saw nothing").unwrap()).unwrap();
    assert_eq!(added["event"], "added");
    assert_eq!(added["server"], "door-box.local.");
    assert_eq!(added["port"], https_port);
    assert_eq!(added["txt"]["fp"], fp.as_str());
    let box_id = std::fs::read_to_string(dir.path().join("identity.json")).unwrap();
    assert!(
        box_id.contains(added["txt"]["box"].as_str().unwrap())
            && added["txt"]["box"].as_str().unwrap().starts_with("box-"),
        "{added}"
    );
    assert!(
        added["addresses"].as_array().unwrap().iter().any(|a| a == lan.addr_a().as_str()),
        "{added}"
    );
    // SIGTERM: the box shuts down and sends its goodbye, long before the
    // records' two-minute TTL would have run out.
    let t0 = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let removed: serde_json::Value =
        serde_json::from_str(&events.next().expect("no goodbye seen").unwrap()).unwrap();
    assert_eq!(removed["event"], "removed");
    assert!(t0.elapsed() < Duration::from_secs(15));
    let _ = running.0.wait();
    let _ = watch.kill();
    let _ = watch.wait();
}
