//! The disk-space alarm: below `min_free_bytes` free in the data directory's file system,
//! the state thread refuses requests that add data, with a reason that names the
//! directory, the figures and what to do. Reads and deletes go on (deletes are how an
//! operator makes room), and the alarm clears by itself once space returns.
//!
//! Why refuse early instead of running into ENOSPC: a write or fsync that fails stops the
//! radiant (fail-stop, exit 74), and a radiant that cannot start its next WAL segment or
//! write its next snapshot stops as well. Refusing new data while there is still room
//! keeps the radiant serving what it holds and leaves the room the log and the next
//! snapshot need.
//!
//! The alarm is this radiant's own: a herald refuses writes for its disk. A follower whose
//! disk runs low says so in its status and in its log, and if it does run out it stops
//! while the rest of its order carries on.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::storage::file_system::DataDir;

/// How often the free space is measured (one statvfs(2)) on a quiet radiant. Under
/// writes it is measured sooner: once the log bytes appended since the last measurement
/// reach half the room left above the threshold, so a fast writer cannot run a disk
/// from "above the threshold" to full between two measurements.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The alarm's state, kept by the state thread.
pub struct DiskAlarm {
    /// The threshold (`min_free_bytes`); 0 turns the alarm off.
    min_free_bytes: u64,
    checked_at: Option<Instant>,
    /// Bytes free at the last check (`None` before the first, or when it failed).
    free_bytes: Option<u64>,
    /// Why writes are refused, while they are.
    alarm: Option<String>,
    /// Log bytes handed to the WAL writer since the last measurement.
    appended_bytes: u64,
}

impl DiskAlarm {
    /// An alarm at `min_free_bytes` (0: never).
    pub fn new(min_free_bytes: u64) -> DiskAlarm {
        DiskAlarm {
            min_free_bytes,
            checked_at: None,
            free_bytes: None,
            alarm: None,
            appended_bytes: 0,
        }
    }

    /// Measures the free space when it is due, raising or clearing the alarm.
    pub fn check(&mut self, data_dir: &DataDir) {
        let now = Instant::now();
        let room = self.free_bytes.map_or(0, |free| free.saturating_sub(self.min_free_bytes));
        let recent = self.checked_at.is_some_and(|checked| now - checked < CHECK_INTERVAL);
        if self.min_free_bytes == 0 || (recent && self.appended_bytes < room / 2) {
            return;
        }
        self.checked_at = Some(now);
        self.appended_bytes = 0;
        let free = match data_dir.file_system.available_bytes(&data_dir.path) {
            Ok(free) => free,
            Err(error) => {
                // Not knowing is no reason to refuse: a full disk still stops the radiant.
                if self.free_bytes.take().is_some() {
                    warn!(%error, "disk alarm: cannot measure free space in the data directory");
                }
                return;
            }
        };
        self.free_bytes = Some(free);
        match (free < self.min_free_bytes, self.alarm.is_some()) {
            (true, false) => {
                let reason = format!(
                    "disk space alarm: the data directory {} has {free} bytes free, below \
                     min_free_bytes ({}); writes that add data are refused until space is \
                     freed (delete keys, move shards to another order, remove other files or \
                     grow the disk); reads and deletes still work",
                    data_dir.path.display(),
                    self.min_free_bytes
                );
                warn!(%reason, "disk alarm: raised");
                self.alarm = Some(reason);
            }
            (false, true) => {
                info!(free, min_free_bytes = self.min_free_bytes, "disk alarm: cleared");
                self.alarm = None;
            }
            _ => {}
        }
    }

    /// `bytes` of log entries were handed to the WAL writer.
    pub fn note_appended(&mut self, bytes: u64) {
        self.appended_bytes = self.appended_bytes.saturating_add(bytes);
    }

    /// Why requests that add data are refused now, if they are.
    pub fn refusal(&self) -> Option<&str> {
        self.alarm.as_deref()
    }

    /// Bytes free at the last measurement.
    pub fn free_bytes(&self) -> Option<u64> {
        self.free_bytes
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::storage::file_system::FileSystem;
    use crate::storage::memory_file_system::{DiskFaults, MemoryFileSystem};

    /// A data directory on a simulated disk of `capacity_bytes` (which holds nothing).
    fn disk_of(capacity_bytes: u64) -> (MemoryFileSystem, DataDir) {
        let faults = DiskFaults { capacity_bytes, ..DiskFaults::default() };
        let disk = MemoryFileSystem::new(7, faults);
        disk.create_dir_all(std::path::Path::new("/data")).expect("create /data");
        let data_dir =
            DataDir { file_system: Arc::new(disk.clone()), path: PathBuf::from("/data") };
        (disk, data_dir)
    }

    fn resize(disk: &MemoryFileSystem, capacity_bytes: u64) {
        disk.set_faults(DiskFaults { capacity_bytes, ..DiskFaults::default() });
    }

    #[test]
    fn the_alarm_rises_below_the_threshold_and_clears_above_it() {
        let (disk, data_dir) = disk_of(1_000);
        let mut alarm = DiskAlarm::new(500);
        alarm.check(&data_dir);
        assert_eq!(alarm.refusal(), None, "1,000 bytes free is above 500");
        assert_eq!(alarm.free_bytes(), Some(1_000));
        resize(&disk, 100);
        alarm.check(&data_dir);
        assert_eq!(alarm.refusal(), None, "not measured again within CHECK_INTERVAL");
        // Half the 500 bytes of room appended: measured again at once.
        alarm.note_appended(250);
        alarm.check(&data_dir);
        let refusal = alarm.refusal().expect("100 bytes free is below 500");
        assert!(refusal.contains("/data") && refusal.contains("min_free_bytes"), "{refusal}");
        resize(&disk, 10_000);
        alarm.checked_at = None;
        alarm.check(&data_dir);
        assert_eq!(alarm.refusal(), None, "the alarm clears once space returns");
    }

    #[test]
    fn zero_turns_the_alarm_off() {
        let (_disk, data_dir) = disk_of(1);
        let mut alarm = DiskAlarm::new(0);
        alarm.check(&data_dir);
        assert_eq!(alarm.refusal(), None);
    }
}
