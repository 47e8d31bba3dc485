//! The configuration file with the real binary: the shipped sample passes
//! `venuebox config check`; flags beat the environment, which beats the
//! file, which beats the defaults; secrets in URLs are masked; a setting
//! that does not exist is refused by name.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/venuebox.toml");

fn venuebox(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(common::binary::BIN)
        .args(args)
        .env_remove("VENUEBOX_LISTEN")
        .env_remove("VENUEBOX_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The address `venuebox serve` says it listens on.
fn listens_on(file: &std::path::Path, flags: &[&str], env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::binary::BIN)
        .arg("serve")
        .arg("--config")
        .arg(file)
        .arg("--data-dir")
        .arg(data.path())
        .args(flags)
        .env_remove("VENUEBOX_LISTEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    for line in lines {
        if let Some(rest) = line.unwrap().strip_prefix("venuebox listening on http://") {
            addr = rest.split(':').next().unwrap().to_string();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    addr
}

#[test]
fn the_shipped_sample_checks_out() {
    let out = venuebox(&["config", "check", "--config", SAMPLE], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("https-listen") && text.contains("0.0.0.0:8443"), "{text}");
    let line = text.lines().find(|l| l.starts_with("listen ")).unwrap();
    assert!(line.ends_with("(file)"), "{line}");
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venuebox.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.2:0\"\nhttps_listen = \"off\"\npair-listen = \"off\"\nno-mdns = true\n",
    )
    .unwrap();
    assert_eq!(listens_on(&file, &[], &[]), "127.0.0.2", "the file");
    let env = [("VENUEBOX_LISTEN", "127.0.0.3:0")];
    assert_eq!(listens_on(&file, &[], &env), "127.0.0.3", "the environment over the file");
    assert_eq!(
        listens_on(&file, &["--listen", "127.0.0.4:0"], &env),
        "127.0.0.4",
        "a flag over both"
    );
    // config check says where each value came from.
    let path = file.to_str().unwrap();
    let out = venuebox(&["config", "check", "--config", path], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("listen ")).unwrap();
    assert!(line.contains("127.0.0.3:0") && line.ends_with("(environment)"), "{line}");
    let line = text.lines().find(|l| l.starts_with("hold-secs ")).unwrap();
    assert!(line.ends_with("(default)"), "{line}");
}

#[test]
fn secrets_are_masked_and_unknown_settings_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venuebox.toml");
    std::fs::write(&file, "manifest-url = \"https://me:hunter2@cdn.example/m.json?sig=s3cret\"\n")
        .unwrap();
    let out = venuebox(&["config", "check", "--config", file.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("https://****@cdn.example/m.json?****"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");

    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten-port = 80\n").unwrap();
    let out = venuebox(&["config", "check"], &[("VENUEBOX_CONFIG", file.to_str().unwrap())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused");
    assert!(err.contains("unknown setting 'listen-port'"), "{err}");
    std::fs::write(&file, "simulate = \"yes\"\n").unwrap();
    let out = venuebox(&["config", "check", "--config", file.to_str().unwrap()], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulate = true"), "a switch");
}
