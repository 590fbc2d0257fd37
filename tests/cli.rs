//! The command line: help lists every variable, bad configuration stops start-up with one line
//! naming the variable, and `db upgrade` is idempotent.

use std::process::Command;

use eventflow::config::SETTINGS;

fn eventflow(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventflow"));
    command
        .current_dir(dir)
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL");
    command
}

#[test]
fn help_lists_every_command_and_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = eventflow(dir.path()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["serve", "worker", "db"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
    for setting in SETTINGS {
        assert!(
            help.contains(setting.name),
            "{} missing from --help",
            setting.name
        );
    }
    let serve = eventflow(dir.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(serve.stdout)
            .unwrap()
            .contains("--no-worker")
    );
}

#[test]
fn invalid_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = eventflow(dir.path())
        .arg("serve")
        .env("BATCH_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("BATCH_SIZE=\"lots\""), "{stderr}");
    assert!(stderr.contains("expected a whole number"), "{stderr}");

    // A .env file in the working directory is read too.
    std::fs::write(dir.path().join(".env"), "RETRY_BASE_DELAY=soon\n").unwrap();
    let output = eventflow(dir.path()).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("RETRY_BASE_DELAY")
    );
}

#[test]
fn db_upgrade_creates_the_schema_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = eventflow(dir.path())
            .args(["db", "upgrade"])
            .env("LOG_LEVEL", "error")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8(output.stdout)
                .unwrap()
                .contains("up to date")
        );
    }
    assert!(dir.path().join("eventflow.db").exists());
}
