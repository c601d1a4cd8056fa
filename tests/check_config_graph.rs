//! `radiant check-config` given every config of one system: it checks the association
//! graph (each radiant → the neighbour it beacons) as well as each file. No radiant is
//! started and no socket is opened, so the ports only need to differ from each other.

use std::path::{Path, PathBuf};
use std::process::Command;

const RADIANTS: u16 = 6;

/// Writes radiant `number`'s config (peer port 7600 + 10n, client port one above, its own
/// data directory, `bootstrap_expect` = 6) and returns its path.
fn write_config(directory: &Path, number: u16, neighbour: Option<u16>) -> PathBuf {
    let peer_port = 7600 + 10 * number;
    let mut text = format!(
        "my_ip = \"127.0.0.1\"\nmy_port = {peer_port}\nclient_ip = \"127.0.0.1\"\n\
         client_port = {}\ndata_dir = \"data-{number}\"\nbootstrap_expect = {RADIANTS}\n\
         cluster_secret = \"a test secret of 16+ bytes\"\n",
        peer_port + 1
    );
    if let Some(other) = neighbour {
        text.push_str(&format!(
            "neighbor_ip = \"127.0.0.1\"\nneighbor_port = {}\n",
            7600 + 10 * other
        ));
    }
    let path = directory.join(format!("radiant-{number}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `radiant check-config` on the files; returns the exit code, stdout and stderr.
fn check_config(files: &[PathBuf]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_radiant"))
        .arg("check-config")
        .args(files)
        .output()
        .expect("run radiant");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().expect("exited normally"), text(&output.stdout), text(&output.stderr))
}

fn shown(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|file| file.display().to_string()).collect()
}

#[test]
fn a_ring_of_six_is_weakly_connected_and_exits_zero() {
    let directory = tempfile::tempdir().expect("temp dir");
    let files: Vec<PathBuf> = (0..RADIANTS)
        .map(|number| write_config(directory.path(), number, Some((number + 1) % RADIANTS)))
        .collect();
    let (code, stdout, stderr) = check_config(&files);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("association graph: ok (6 radiants, weakly connected)"), "{stdout}");
    let first = &shown(&files)[0];
    let line = format!("{first}: peer 127.0.0.1:7600 -> neighbour 127.0.0.1:7610");
    assert!(stdout.contains(&line), "{stdout}");
}

#[test]
fn a_star_of_six_exits_zero_and_notes_the_radiant_without_neighbour() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut files = vec![write_config(directory.path(), 0, None)];
    files.extend((1..RADIANTS).map(|number| write_config(directory.path(), number, Some(0))));
    let (code, stdout, stderr) = check_config(&files);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("weakly connected"), "{stdout}");
    let hub = &shown(&files)[0];
    assert!(stdout.contains(&format!("{hub}: peer 127.0.0.1:7600 -> neighbour (none)")));
    assert!(stdout.contains(&format!("note: {hub} has no neighbour")), "{stdout}");
}

#[test]
fn two_rings_of_three_exit_one_and_name_the_files_of_each_group() {
    let directory = tempfile::tempdir().expect("temp dir");
    let next = |number: u16| if number % 3 == 2 { number - 2 } else { number + 1 };
    let files: Vec<PathBuf> = (0..RADIANTS)
        .map(|number| write_config(directory.path(), number, Some(next(number))))
        .collect();
    let (code, stdout, stderr) = check_config(&files);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("2 separate groups"), "{stdout}");
    let names = shown(&files);
    let first = format!("{{{}}}", names[..3].join(", "));
    let second = format!("{{{}}}", names[3..].join(", "));
    assert!(stdout.contains(&first), "{first} not in {stdout}");
    assert!(stdout.contains(&second), "{second} not in {stdout}");
}

#[test]
fn an_invalid_file_among_several_is_reported_and_exits_one() {
    let directory = tempfile::tempdir().expect("temp dir");
    let good = write_config(directory.path(), 0, None);
    let bad = directory.path().join("bad.toml");
    std::fs::write(&bad, "shard_count = 0\n").expect("write config");
    let (code, _, stderr) = check_config(&[good, bad]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("config key `shard_count` = 0"), "{stderr}");
    assert!(stderr.contains("1 of 2 config files invalid"), "{stderr}");
}
