//! The `radiant` command line against a running daemon, and its handling of bad
//! configuration files: messages name the problem, exit codes say what happened.

mod common;

use common::{radiant, Daemon};

#[test]
fn put_get_cas_delete_through_the_command_line() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), "");
    let address = daemon.client_address.to_string();
    let with_addr = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--addr", address.as_str()]);
        radiant(&all)
    };
    assert_eq!(with_addr(&["put", "k", "v"]).0, 0);
    assert_eq!(with_addr(&["get", "k"]), (0, "v\n".to_string(), String::new()));
    let (code, _, stderr) = with_addr(&["get", "missing"]);
    assert_eq!(code, 2, "absent key exits 2");
    assert!(stderr.contains("key `missing` not found"), "{stderr}");
    assert_eq!(with_addr(&["cas", "k", "--expected", "v", "--new", "w"]).0, 0);
    let (code, _, stderr) = with_addr(&["cas", "k", "--expected", "v", "--new", "x"]);
    assert_eq!(code, 2, "a failed cas exits 2");
    assert!(stderr.contains("holds `w`"), "{stderr}");
    assert_eq!(with_addr(&["cas", "fresh", "--new", "1"]).0, 0, "cas without --expected creates");
    assert_eq!(with_addr(&["delete", "k"]).0, 0);
    assert_eq!(with_addr(&["delete", "k"]).0, 2);
}

#[test]
fn an_unreachable_radiant_is_an_error_with_a_hint() {
    // Port 1 on loopback: nothing listens there.
    let (code, _, stderr) = radiant(&["get", "k", "--addr", "127.0.0.1:1", "--timeout", "2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot connect to radiant at 127.0.0.1:1"), "{stderr}");
}

#[test]
fn a_bad_config_names_the_key_and_exits_non_zero() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("bad.toml");
    std::fs::write(&path, "election_timeout = 4\nheartbeat_interval = 3\nshard_count = 0\n")
        .expect("write");
    let path_text = path.display().to_string();
    let (code, _, stderr) = radiant(&["check-config", &path_text]);
    assert_eq!(code, 1);
    assert!(stderr.contains("config key `election_timeout` = 4"), "{stderr}");
    assert!(stderr.contains("config key `shard_count` = 0"), "{stderr}");
    let (code, _, stderr) = radiant(&["start", "--config", &path_text]);
    assert_eq!(code, 1, "start refuses a bad config");
    assert!(stderr.contains("election_timeout"), "{stderr}");

    std::fs::write(&path, "elction_timeout = 40\n").expect("write");
    let (code, _, stderr) = radiant(&["check-config", &path_text]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown field `elction_timeout`"), "{stderr}");

    let (code, _, stderr) = radiant(&["check-config", "/nonexistent/radiant.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read config file /nonexistent/radiant.toml"), "{stderr}");
}

#[test]
fn every_example_config_passes_check_config() {
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).expect("config dir")
    {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|extension| extension != "toml") {
            continue; // config/example-admin-token is a token file, not a config
        }
        let path = path.display().to_string();
        let (code, stdout, stderr) = radiant(&["check-config", &path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        assert!(stdout.contains(": ok"), "{stdout}");
    }
}
