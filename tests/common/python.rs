//! Independent implementations in Python (installed by `.ci/run` from PyPI), run as scripts.

use std::process::Command;

/// Fails the test, saying how to install it, unless python3 can import `module` (installed with
/// `pip install PIP_SPEC`).
pub fn require_module(module: &str, pip_spec: &str) {
    let importable = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|status| status.success());
    super::services::require_tool(
        importable,
        &format!("the Python package {module}"),
        &format!("pip install {pip_spec}"),
    );
}

/// Runs `tests/interop/SCRIPT` with `args` and `stdin`; returns its stdout, failing the test
/// with its output when it fails.
pub async fn run_script(script: &str, args: Vec<String>, stdin: String) -> String {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("python3")
            .arg(&path)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        child.wait_with_output()
    })
    .await
    .expect("the script's task")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    stdout
}
