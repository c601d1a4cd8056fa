//! A checked load on real radiants: a `radiant bench --history` process (every operation
//! written for `radiant check-history`), killed by PID on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest the load may run past its duration (its last operations' deadlines).
pub const LOAD_GRACE: Duration = Duration::from_secs(60);

/// A `radiant bench --history` process.
pub struct Load {
    child: Child,
    stdout: PathBuf,
    history: PathBuf,
    seconds: u64,
}

impl Load {
    /// Four connections for `seconds` against `address`, 30% linearizable gets over 300
    /// keys, the history in `history` and the JSON report in `stdout`.
    pub fn start(address: &str, history: &Path, stdout: PathBuf, seconds: u64) -> Load {
        Load::start_with_reads(address, history, stdout, seconds, "linearizable")
    }

    /// As `start`, with the gets read as `reads` (`radiant bench --reads`: `linearizable`,
    /// `lease` or `mixed`).
    pub fn start_with_reads(
        address: &str,
        history: &Path,
        stdout: PathBuf,
        seconds: u64,
        reads: &str,
    ) -> Load {
        let out = File::create(&stdout).expect("bench stdout file");
        let child = Command::new(env!("CARGO_BIN_EXE_radiant"))
            .args(["bench", "--addr", address, "--connections", "4", "--warmup", "0"])
            .args(["--duration", &seconds.to_string(), "--keys", "300", "--key-bytes", "8"])
            .args(["--value-bytes", "16", "--get-ratio", "0.3", "--reads", reads])
            .args(["--json", "--history"])
            .arg(history)
            .env("RADIANT_TOKEN", super::ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn radiant bench");
        Load { child, stdout, history: history.to_path_buf(), seconds }
    }

    /// Waits for the load to end; its exit code and JSON report.
    pub fn finish(mut self) -> (i32, Value) {
        let deadline = Instant::now() + Duration::from_secs(self.seconds) + LOAD_GRACE;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "radiant bench outlived its deadline");
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = std::fs::read_to_string(&self.stdout).expect("bench output");
        let report = serde_json::from_str(text.trim()).unwrap_or_else(|error| {
            panic!("bench report is not JSON ({error}): {text}");
        });
        (code, report)
    }
}

impl Load {
    /// Waits for the load to end and checks it: it exited 0 (every operation answered)
    /// and its history passes `radiant check-history`. Returns its JSON report.
    pub fn finish_checked(self) -> Value {
        let history = self.history.display().to_string();
        let (code, report) = self.finish();
        assert_eq!(code, 0, "the checked load failed: {report}");
        let (code, verdict, stderr) = super::radiant(&["check-history", &history]);
        assert_eq!(code, 0, "the history is not linearizable: {verdict}{stderr}");
        report
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
