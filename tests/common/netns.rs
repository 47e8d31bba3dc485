//! A venue's LAN on one machine: network namespaces joined by a bridge
//! (in a namespace of its own), one per box and one for the clients,
//! 10.80.ID.N/24. Made and removed by the test; nothing leaves the
//! machine. Needs root (`ip netns`), as CI has.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn ip(args: &[&str]) {
    let out =
        Command::new("ip").args(args).output().expect("iproute2's `ip` is needed for this test");
    assert!(
        out.status.success(),
        "ip {args:?}: {} (this test needs root for network namespaces)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces `NAME-ID` for each of `nodes`, on one bridge.
pub struct Venue {
    id: u32,
    switch: String,
    nodes: Vec<String>,
}

impl Venue {
    pub fn new(nodes: &[&str]) -> Venue {
        let id = std::process::id() % 200 + 20;
        let switch = format!("vsw{id}");
        let nodes: Vec<String> = nodes.iter().map(|n| format!("{n}{id}")).collect();
        for ns in std::iter::once(&switch).chain(&nodes) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (k, ns) in nodes.iter().enumerate() {
            let (inner, port) = (format!("vi{id}n{k}"), format!("vp{id}n{k}"));
            ip(&["link", "add", &inner, "type", "veth", "peer", "name", &port]);
            ip(&["link", "set", &inner, "netns", ns]);
            ip(&["link", "set", &port, "netns", &switch]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("10.80.{id}.{}/24", k + 1);
            ip(&["-n", ns, "addr", "add", &addr, "dev", &inner]);
            ip(&["-n", ns, "link", "set", &inner, "up", "multicast", "on"]);
        }
        Venue { id, switch, nodes }
    }

    /// What [`Venue::bad_line`] may need, from Debian (apt must run in
    /// the machine's own namespace, where the mirrors are).
    pub fn tools() {
        super::apt::install(&["nftables", "iproute2"]);
    }

    fn index(&self, node: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n == &format!("{node}{}", self.id))
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// The namespace of `node`.
    pub fn ns(&self, node: &str) -> String {
        self.nodes[self.index(node)].clone()
    }

    /// The address of `node`.
    pub fn addr(&self, node: &str) -> String {
        format!("10.80.{}.{}", self.id, self.index(node) + 1)
    }

    /// Takes `node`'s cable out of the switch (`up: false`) or puts it back.
    pub fn cable(&self, node: &str, up: bool) {
        let port = format!("vp{}n{}", self.id, self.index(node));
        ip(&["-n", &self.switch, "link", "set", &port, if up { "up" } else { "down" }]);
    }

    /// Cuts (`cut: true`) or heals the path between `node` and `other`
    /// only, on `node`'s side (nftables; see [`Venue::tools`]): both
    /// still reach everyone else, as when a switch between the two boxes
    /// fails while each keeps its own phones.
    pub fn cut_between(&self, node: &str, other: &str, cut: bool) {
        let ns = self.ns(node);
        let nft = |rule: &str| {
            Command::new("ip")
                .args(["netns", "exec", &ns, "nft", rule])
                .output()
                .expect("nft (Debian's nftables)")
        };
        if !cut {
            let _ = nft("delete table inet cut");
            return;
        }
        let peer = self.addr(other);
        for rule in [
            "add table inet cut".to_string(),
            "add chain inet cut input { type filter hook input priority 0 ; }".into(),
            "add chain inet cut output { type filter hook output priority 0 ; }".into(),
            format!("add rule inet cut input ip saddr {peer} drop"),
            format!("add rule inet cut output ip daddr {peer} drop"),
        ] {
            let out = nft(&rule);
            assert!(out.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// A bad line on `node`'s side of its cable: `loss` percent of its
    /// packets lost each way and `delay_ms` added to what it sends, with
    /// `tc netem` where the kernel has it. Where it does not (these
    /// machines' kernel is built without CONFIG_NET_SCH_NETEM), the loss
    /// is made with nftables (`numgen random`; install Debian's package
    /// with [`Venue::tools`] first, outside any namespace) and the delay with a token bucket (`tc tbf`) at
    /// 1 Mbit/s, whose queue delays what it holds. Says which it used.
    pub fn bad_line(&self, node: &str, loss: u32, delay_ms: u32) -> &'static str {
        let (ns, dev) = (self.ns(node), format!("vi{}n{}", self.id, self.index(node)));
        let tc = |args: &[&str]| {
            Command::new("tc").args(["-n", &ns, "qdisc"]).args(args).output().unwrap()
        };
        let netem = tc(&[
            "add",
            "dev",
            &dev,
            "root",
            "netem",
            "delay",
            &format!("{delay_ms}ms"),
            "loss",
            &format!("{loss}%"),
        ]);
        if netem.status.success() {
            return "tc netem";
        }
        let tbf = tc(&[
            "add",
            "dev",
            &dev,
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "16kbit",
            "latency",
            &format!("{}ms", delay_ms.max(1) * 10),
        ]);
        assert!(tbf.status.success(), "tc tbf: {}", String::from_utf8_lossy(&tbf.stderr));
        let nft = |rule: &str| {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", rule])
                .output()
                .expect("nft (Debian's nftables)");
            assert!(out.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&out.stderr));
        };
        nft("add table inet badline");
        for hook in ["input", "output"] {
            nft(&format!(
                "add chain inet badline {hook} {{ type filter hook {hook} priority 0 ; }}"
            ));
            nft(&format!("add rule inet badline {hook} numgen random mod 100 < {loss} drop"));
        }
        "nftables loss and tc tbf"
    }

    /// Takes the bad line away again.
    pub fn clean_line(&self, node: &str) {
        let (ns, dev) = (self.ns(node), format!("vi{}n{}", self.id, self.index(node)));
        let _ = Command::new("tc").args(["-n", &ns, "qdisc", "del", "dev", &dev, "root"]).output();
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "delete table inet badline"])
            .output();
    }

    /// `venuebox serve` in `node`'s namespace on its own address (plain
    /// HTTP :8080 for the test's clients, HTTPS :8443, pairing :8081, the
    /// standby link :7000, mDNS as `door-NODE`), once it listens; logging
    /// at `log` (`RUST_LOG`).
    pub fn serve(&self, node: &str, dir: &Path, extra: &[&str], log: &str) -> Child {
        let ip = self.addr(node);
        let at = |port: u16| format!("{ip}:{port}");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node), super::binary::BIN, "serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &at(8080), "--https-listen", &at(8443), "--pair-listen", &at(8081)])
            .args(["--link-listen", &at(7000), "--mdns-name", &format!("door-{node}")])
            .args(extra)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the box exited before listening").unwrap();
            if line.starts_with("standby link on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        child
    }

    /// `venuebox join` run in `node`'s namespace, to the primary on `primary`.
    pub fn join(&self, node: &str, dir: &Path, primary: &str, code: &str, fingerprint: &str) {
        self.join_as(node, dir, primary, code, fingerprint, &[]);
    }

    /// `join` with more arguments (`--satellite`).
    pub fn join_as(
        &self,
        node: &str,
        dir: &Path,
        primary: &str,
        code: &str,
        fingerprint: &str,
        more: &[&str],
    ) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(node), super::binary::BIN, "join"])
            .arg(format!("https://{}:8443", self.addr(primary)))
            .args([code, "--fingerprint", fingerprint, "--link-port", "7000"])
            .args(more)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "join: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `f` on a thread inside `node`'s namespace: every socket it
    /// opens is on that node's side of the LAN.
    pub fn run_in<T: Send + 'static>(
        &self,
        node: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", self.ns(node));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with a namespace file we hold open.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.switch).chain(&self.nodes) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
