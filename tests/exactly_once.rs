//! Exactly-once writes on a real daemon: a delete whose answer is lost after it was
//! applied is resent by the client library with its session, answers what its one
//! application did (`existed = true`), and does not erase a put that completed between
//! the two attempts. The answer is lost by the test-only fault switch
//! `RADIANT_TEST_DROP_DELETE_ANSWERS` (the reactor drops the first N delete answers).
//! A batch of writes is one write too: its keys change together, and a batch whose keys
//! are of two shards is refused whole.

mod common;

use std::time::{Duration, Instant};

use common::{write_config, Daemon};
use radiant::client::{Client, ClientOptions};

/// How long the client waits for one attempt's answer before resending: long enough for
/// the test to put the key between the delete's application and its resend.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

fn start_dropping_delete_answers(root: &std::path::Path) -> Daemon {
    let data_dir = root.join("radiant");
    let config = write_config(&data_dir, "");
    let switch = (radiant::server::test_switches::DROP_DELETE_ANSWERS, "1");
    let daemon = Daemon::start_with_environment(&data_dir, &config, &[switch]);
    daemon.wait_until_ready();
    daemon
}

#[test]
fn a_delete_whose_answer_is_lost_is_applied_once_and_a_put_between_its_attempts_survives() {
    let root = tempfile::tempdir().expect("temp dir");
    let daemon = start_dropping_delete_answers(root.path());
    let mut other = daemon.connect();
    other.put(b"k", b"first").expect("put");

    let address = daemon.client_address.to_string();
    let deleter = std::thread::spawn(move || {
        let options = ClientOptions {
            timeout: Duration::from_secs(30),
            attempt_timeout: ATTEMPT_TIMEOUT,
            ..ClientOptions::default()
        };
        let mut client = Client::connect(&address, options).expect("connect");
        let started = Instant::now();
        (client.delete(b"k"), started.elapsed())
    });
    // The delete is applied (its answer then dropped): the key is gone. Then another
    // client writes it again, before the deleter's attempt times out.
    let deadline = Instant::now() + Duration::from_secs(20);
    while other.get(b"k").expect("get").is_some() {
        assert!(Instant::now() < deadline, "the delete was never applied; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    other.put(b"k", b"second").expect("put between the attempts");

    let (deleted, elapsed) = deleter.join().expect("deleter thread");
    let existed = deleted.expect("the resent delete is answered");
    assert!(
        daemon.log().contains("test fault: dropped the answer to an applied delete"),
        "the fault switch did not drop the answer; log:\n{}",
        daemon.log()
    );
    assert!(elapsed >= ATTEMPT_TIMEOUT, "answered after {elapsed:?}: it was not resent");
    assert!(existed, "the one application found the key: the resend must say so");
    assert_eq!(
        other.get(b"k").expect("get").as_deref(),
        Some(&b"second"[..]),
        "the resent delete was applied again and erased a put that completed in between"
    );
}

#[test]
fn a_batch_changes_its_keys_together_and_keys_of_two_shards_are_refused_whole() {
    let root = tempfile::tempdir().expect("temp dir");
    let data_dir = root.path().join("radiant");
    let daemon = Daemon::start(&data_dir, "");
    daemon.wait_until_ready();
    let mut client = daemon.connect();
    client.put(b"{b}old", b"x").expect("put");
    let writes: [(&[u8], Option<&[u8]>); 3] =
        [(b"{b}one", Some(b"1")), (b"{b}two", Some(b"2")), (b"{b}old", None)];
    let outcome = client.write_batch(&writes, false).expect("batch");
    assert_eq!((outcome.written, outcome.existed), (true, 1));
    assert_eq!(client.get(b"{b}one").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(client.get(b"{b}old").expect("get"), None);
    let outcome = client.write_batch(&[(b"{b}new", Some(b"n")), (b"{b}one", None)], true);
    assert_eq!(outcome.map(|o| (o.written, o.existed)).expect("batch"), (false, 1));
    assert_eq!(client.get(b"{b}new").expect("get"), None, "a failed condition wrote");
    // "a" and "b" are in different shards of the default 64.
    let refused = client.write_batch(&[(b"a", Some(b"1")), (b"b", Some(b"2"))], false);
    let refusal = refused.expect_err("keys of two shards").to_string();
    assert!(refusal.contains("must be of one shard"), "{refusal}");
    assert_eq!(client.get(b"a").expect("get"), None, "a refused batch wrote part of itself");
}
