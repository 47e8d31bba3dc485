//! Schemathesis over the whole documented API of the real binary: an
//! environment test (Python tools from PyPI), so its own test binary, run
//! by the full suite and by name (`cargo test --test schemathesis`).

mod common;

/// Schemathesis (installed from PyPI into target/ on first use) over the
/// whole documented API of the real binary, as an admin, with a bounded
/// number of examples: no 5xx, no status the document does not list,
/// every answer in the content type the document says, and every body
/// (events of the SSE feeds too) valid against its documented schema. Left out: signing
/// the admin itself out or revoking its session (the rest of the run would
/// be 401s, which the test refuses), and the tus
/// bodies (`application/offset+octet-stream`, which schemathesis cannot
/// generate; tuspy and tests/it/uploads_tus.rs cover them).
#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let st = common::s3::python_deps(
        "pydeps-schemathesis",
        "import schemathesis",
        &["schemathesis==4.32.5"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) =
        common::binary::serve(tmp.path(), &["--demo", "--sign-in-refusal-delay-ms", "0"], &[]);
    let admin = common::binary::token(tmp.path(), "admin");
    let out = std::process::Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://{addr}/api/v1/openapi.json"))
        .args(["--url", &format!("http://{addr}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "10", "--generation-deterministic", "--continue-on-failure", "--request-timeout", "10"])
        // Setting the box's time to random dates would expire the run's own sign-in.
        .args(["--exclude-name", "PUT /api/v1/clock"])
        .args(["--exclude-name", "DELETE /api/v1/session"])
        .args(["--exclude-name", "DELETE /api/v1/sessions/{id}"])
        .args(["--exclude-name", "PATCH /api/v1/uploads/{id}"])
        .args(["--exclude-name", "POST /api/v1/uploads"])
        .args(["--exclude-name", "POST /api/v1/uploads/"])
        .args(["-H", &format!("Authorization: Bearer {admin}")])
        .env("PYTHONPATH", &st)
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(tmp.path())
        .output()
        .expect("python3 runs schemathesis");
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("API Operations:"), "{text}");
    assert!(
        !text.contains("Authentication failed"),
        "the admin's session ended mid-run; operations went untested:\n{text}"
    );
}
