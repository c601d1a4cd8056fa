//! TLS on real daemons (issue 13): an order of three with mutual TLS on its peer links
//! and TLS on the client port serves a client that verifies it; a radiant whose
//! certificate comes from another CA is refused; `openssl s_client` sees TLS 1.3 on both
//! ports and the peer port refuses a client without a certificate; a certificate that
//! cannot be loaded stops the start with the file's name.
//!
//! The certificates are made with `openssl` in a temporary directory. Run by hand without
//! `openssl` the tests say so and skip; `.ci/run` installs it and sets
//! `RADIANT_REQUIRE_PRIVILEGED_TESTS=1`, under which a skip fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, order_member_config, run_bounded, status, Daemon};

const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";
const LIMIT: Duration = Duration::from_secs(30);

/// Whether `openssl` runs here; without it the test skips, unless CI requires it.
fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    common::can_run(found, "tls", "openssl to make certificates")
}

fn openssl(directory: &Path, args: &[&str]) {
    let output = run_bounded(Command::new("openssl").current_dir(directory).args(args), LIMIT);
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `name` in `directory`: `NAME-ca.pem` and its key.
fn make_ca(directory: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    openssl(
        directory,
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key],
    );
    let subject = format!("/CN={name} test CA");
    openssl(
        directory,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    directory.join(pem)
}

/// A certificate for 127.0.0.1 signed by CA `ca` (as made by `make_ca`): `(cert, key)`.
fn make_certificate(directory: &Path, ca: &str, name: &str) -> (PathBuf, PathBuf) {
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    openssl(
        directory,
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key],
    );
    let subject = format!("/CN={name}");
    openssl(directory, &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subject]);
    let extensions = format!("{name}.ext");
    std::fs::write(
        directory.join(&extensions),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("extensions file");
    let (ca_pem, ca_key) = (format!("{ca}-ca.pem"), format!("{ca}-ca.key"));
    openssl(
        directory,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extensions,
        ],
    );
    (directory.join(pem), directory.join(key))
}

fn tls_lines(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\ntls_ca_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    )
}

/// An order of three; radiant 3's certificate and the CA it trusts are `third_ca`'s
/// ("good" for the same as the others').
fn start_order(root: &Path, third_ca: &str) -> (Vec<Daemon>, PathBuf) {
    let ca = make_ca(root, "good");
    let third = if third_ca == "good" { ca.clone() } else { make_ca(root, third_ca) };
    let members: Vec<(u64, u16, u16)> = (1..=3).map(|id| (id, free_port(), free_port())).collect();
    let daemons = members
        .iter()
        .map(|&me| {
            let issuer = if me.0 == 3 { third_ca } else { "good" };
            let (cert, key) = make_certificate(root, issuer, &format!("radiant-{}", me.0));
            let trusted = if me.0 == 3 { &third } else { &ca };
            let extra = format!("{TIMING}{}", tls_lines(&cert, &key, trusted));
            let data_dir = root.join(format!("r{}", me.0));
            let config = order_member_config(&data_dir, me, &members, &extra);
            Daemon::start_with_config(&data_dir, &config)
        })
        .collect();
    (daemons, ca)
}

fn cli(args: &[&str]) -> (i32, String, String) {
    common::radiant(args)
}

#[test]
fn an_order_with_tls_serves_verifying_clients_and_refuses_plaintext() {
    if !have_openssl() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let (daemons, ca) = start_order(root.path(), "good");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !daemons.iter().all(|d| status(d).is_some_and(|s| s["ready"] == true)) {
        assert!(Instant::now() < deadline, "the TLS order did not elect a herald");
        std::thread::sleep(Duration::from_millis(100));
    }
    let address = daemons[0].client_address.to_string();
    let ca_text = ca.display().to_string();
    let (code, _, stderr) =
        cli(&["put", "k", "over tls", "--addr", &address, "--tls-ca", &ca_text]);
    assert_eq!(code, 0, "{stderr}");
    for daemon in &daemons {
        let address = daemon.client_address.to_string();
        let (code, stdout, stderr) = cli(&["get", "k", "--addr", &address, "--tls-ca", &ca_text]);
        assert_eq!((code, stdout.trim()), (0, "over tls"), "{stderr}");
    }
    // A plaintext client gets no answer it can read.
    let (code, _, _) = cli(&["get", "k", "--addr", &address, "--timeout", "2"]);
    assert_ne!(code, 0, "a plaintext client must not be served by a TLS port");
}

#[test]
fn a_radiant_with_a_certificate_from_another_ca_is_refused() {
    if !have_openssl() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let (daemons, _ca) = start_order(root.path(), "other");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let outsider = daemons[2].log();
        let insiders = daemons[..2].iter().any(|daemon| daemon.log().contains("TLS failed"));
        let named = outsider.contains("UnknownIssuer") || outsider.contains("unknown ca");
        if insiders && named {
            break;
        }
        assert!(Instant::now() < deadline, "no TLS refusal logged:\n{outsider}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The two with certificates from the CA form the order; the third stays out.
    while !status(&daemons[0]).is_some_and(|status| status["herald"].is_u64()) {
        assert!(Instant::now() < deadline, "the two radiants of the CA elect no herald");
        std::thread::sleep(Duration::from_millis(100));
    }
    let outsider = status(&daemons[2]).expect("the outsider answers");
    assert_eq!(outsider["last_index"].as_u64(), Some(0), "{outsider}");
}

#[test]
fn openssl_sees_tls13_and_the_peer_port_wants_a_client_certificate() {
    if !have_openssl() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let ca = make_ca(root.path(), "good");
    let (cert, key) = make_certificate(root.path(), "good", "single");
    let data_dir = root.path().join("single");
    let config = common::write_config(&data_dir, &tls_lines(&cert, &key, &ca));
    let daemon = Daemon::start_with_config(&data_dir, &config);
    let s_client = |address: String, extra: &[&str]| {
        let ca = ca.display().to_string();
        let out = root.path().join(format!("s_client.{}", free_port()));
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &address, "-CAfile", &ca, "-verify_return_error"])
            .args(["-ign_eof"])
            .args(extra)
            .stdin(Stdio::piped()) // kept open: s_client waits for the radiant, not stdin
            .stdout(std::fs::File::create(&out).expect("output file"))
            .stderr(Stdio::from(std::fs::File::create(out.with_extension("err")).expect("file")))
            .spawn()
            .expect("spawn openssl s_client");
        // Long enough for the handshake and an alert after it; then it is killed by PID.
        let deadline = Instant::now() + Duration::from_secs(3);
        while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!("{}{}", read(&out), read(&out.with_extension("err")))
    };
    let client_port = s_client(daemon.client_address.to_string(), &[]);
    assert!(client_port.contains("TLSv1.3"), "{client_port}");
    assert!(client_port.contains("Verify return code: 0 (ok)"), "{client_port}");
    let peer_port = s_client(daemon.peer_address.to_string(), &[]);
    assert!(peer_port.contains("TLSv1.3"), "{peer_port}");
    let refused = ["alert certificate required", "alert number 116"];
    assert!(refused.iter().any(|text| peer_port.contains(text)), "{peer_port}");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let with_cert = s_client(daemon.peer_address.to_string(), &["-cert", &cert, "-key", &key]);
    assert!(!refused.iter().any(|text| with_cert.contains(text)), "{with_cert}");
}

#[test]
fn a_certificate_that_cannot_be_loaded_stops_the_start_naming_the_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let broken = root.path().join("broken.pem");
    std::fs::write(&broken, "not a certificate\n").expect("file");
    let data_dir = root.path().join("r");
    let config = common::write_config(&data_dir, &tls_lines(&broken, &broken, &broken));
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_radiant"))
            .args(["start", "--config"])
            .arg(&config)
            .stdin(Stdio::null()),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tls_cert_file") && stderr.contains("broken.pem"), "{stderr}");
}
