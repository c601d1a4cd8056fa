//! An in-memory `FileSystem` that remembers what is durable and what is not, so a simulated
//! power loss (`crash`) can keep exactly what a real disk might: the simulator's radiants and
//! the storage tests run the real WAL, snapshot and system-file code on it.
//!
//! The fault model, all drawn from one seeded `Prng` (same seed, same faults):
//! - a crash keeps, per file, any prefix of the writes since its last sync, the last kept one
//!   possibly torn at any byte (mid-sector); and, per directory, any prefix of the name
//!   changes (create, rename, remove) since its last sync, so a file whose directory was not
//!   synced may vanish;
//! - `DiskFaults::out_of_order_per_million`: at a crash, a file's cached data reaches the disk
//!   sector by sector (each sector whole or not at all) but out of order: whole sectors past
//!   the synced length read as zeros while later ones landed, a zero-filled hole before
//!   valid records;
//! - `DiskFaults::bit_flip_per_million`: at a crash, one bit of data that was synced flips;
//! - `DiskFaults::write_error_per_million` and `sync_error_per_million`: `EIO` or `ENOSPC`
//!   on a write, `EIO` on a file or directory sync; `capacity_bytes` gives `ENOSPC` when full.
//!
//! Directories themselves are durable as soon as they are created (storage creates each of
//! its directories once, at first start, and syncs the parent). This module owns the model;
//! it must not know what the files mean.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::file_system::{parent_directory, AppendFile, FileSystem, ReadFile};
use crate::core::prng::Prng;

/// The unit a disk writes atomically, or not at all, after a power loss.
const SECTOR_BYTES: u64 = 512;

/// How often each fault happens, in chances per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// Per write call: it fails with `EIO` or `ENOSPC` and writes nothing.
    pub write_error_per_million: u32,
    /// Per file or directory sync: it fails with `EIO`.
    pub sync_error_per_million: u32,
    /// Per crash: one bit of synced data flips somewhere on the disk.
    pub bit_flip_per_million: u32,
    /// Per file at a crash: a later unsynced write lands while an earlier one does not.
    pub out_of_order_per_million: u32,
    /// Writes past this many live bytes fail with `ENOSPC`; 0 for no limit.
    pub capacity_bytes: u64,
}

/// What the faults did, for reports and for tests that need a fault to have happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub write_errors: u64,
    pub sync_errors: u64,
    pub bits_flipped: u64,
    pub out_of_order_writes: u64,
    pub torn_writes: u64,
    pub crashes: u64,
}

/// A shared handle: clones see the same disk.
#[derive(Clone, Debug)]
pub struct MemoryFileSystem {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug)]
enum Change {
    Write { offset: u64, bytes: Vec<u8> },
    SetLength(u64),
}

#[derive(Debug, Default)]
struct Inode {
    /// What a reader sees now (the page cache).
    contents: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    /// Changes since the last sync, oldest first.
    unsynced: Vec<Change>,
}

#[derive(Clone, Debug)]
enum NameChange {
    Link { path: PathBuf, inode: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf, inode: u64 },
}

impl NameChange {
    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            NameChange::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            NameChange::Unlink { path } => {
                names.remove(path);
            }
            NameChange::Rename { from, to, inode } => {
                names.remove(from);
                names.insert(to.clone(), *inode);
            }
        }
    }
}

#[derive(Debug)]
struct MemoryState {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// The namespace as processes see it.
    names: BTreeMap<PathBuf, u64>,
    /// The namespace that survives a crash for certain.
    durable_names: BTreeMap<PathBuf, u64>,
    /// Name changes per directory since its last sync, oldest first.
    pending_names: BTreeMap<PathBuf, Vec<NameChange>>,
    directories: BTreeSet<PathBuf>,
    faults: DiskFaults,
    counts: FaultCounts,
    prng: Prng,
    /// Bumped at each crash: handles opened before it fail, as a dead process's would.
    epoch: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {}", path.display()))
}

fn injected(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("{what} (injected by the simulated disk)"))
}

fn write_at(buffer: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let offset = offset as usize;
    if buffer.len() < offset + bytes.len() {
        buffer.resize(offset + bytes.len(), 0);
    }
    buffer[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl Change {
    fn apply(&self, buffer: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => write_at(buffer, *offset, bytes),
            Change::SetLength(length) => buffer.resize(*length as usize, 0),
        }
    }
}

impl MemoryState {
    fn chance(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.prng.chance(u64::from(per_million), 1_000_000)
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn check_directory(&self, dir: &Path) -> io::Result<()> {
        if self.directories.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such directory: {}", dir.display()),
            ))
        }
    }

    fn change_name(&mut self, change: NameChange, dir: PathBuf) {
        change.apply(&mut self.names);
        self.pending_names.entry(dir).or_default().push(change);
    }

    fn live_bytes(&self) -> u64 {
        self.inodes.values().map(|inode| inode.contents.len() as u64).sum()
    }

    fn append(&mut self, inode: u64, epoch: u64, bytes: &[u8]) -> io::Result<()> {
        if epoch != self.epoch {
            return Err(injected(io::ErrorKind::Other, "handle opened before a crash"));
        }
        let capacity = self.faults.capacity_bytes;
        if capacity > 0 && self.live_bytes() + bytes.len() as u64 > capacity {
            self.counts.write_errors += 1;
            return Err(injected(io::ErrorKind::StorageFull, "no space left on device"));
        }
        if self.chance(self.faults.write_error_per_million) {
            self.counts.write_errors += 1;
            let kind = if self.prng.chance(1, 2) {
                io::ErrorKind::StorageFull
            } else {
                io::ErrorKind::Other
            };
            return Err(injected(kind, "write failed"));
        }
        let file =
            self.inodes.get_mut(&inode).ok_or_else(|| injected(io::ErrorKind::Other, "gone"))?;
        let offset = file.contents.len() as u64;
        file.contents.extend_from_slice(bytes);
        file.unsynced.push(Change::Write { offset, bytes: bytes.to_vec() });
        Ok(())
    }

    fn sync_inode(&mut self, inode: u64, epoch: u64) -> io::Result<()> {
        if epoch != self.epoch {
            return Err(injected(io::ErrorKind::Other, "handle opened before a crash"));
        }
        if self.chance(self.faults.sync_error_per_million) {
            // Like Linux after a failed fsync: the dirty data may or may not reach the disk,
            // and the caller cannot know which.
            self.counts.sync_errors += 1;
            return Err(injected(io::ErrorKind::Other, "fsync failed: input/output error"));
        }
        let file =
            self.inodes.get_mut(&inode).ok_or_else(|| injected(io::ErrorKind::Other, "gone"))?;
        file.durable = file.contents.clone();
        file.unsynced.clear();
        Ok(())
    }

    /// Drops inodes no name (live, durable or pending) refers to.
    fn collect_garbage(&mut self) {
        let mut referenced: BTreeSet<u64> = self.names.values().copied().collect();
        referenced.extend(self.durable_names.values().copied());
        for change in self.pending_names.values().flatten() {
            match change {
                NameChange::Link { inode, .. } | NameChange::Rename { inode, .. } => {
                    referenced.insert(*inode);
                }
                NameChange::Unlink { .. } => {}
            }
        }
        self.inodes.retain(|inode, _| referenced.contains(inode));
    }

    fn crash_inode(&mut self, inode: u64) {
        let Some(mut file) = self.inodes.remove(&inode) else { return };
        let reordered = !file.unsynced.is_empty()
            && self.chance(self.faults.out_of_order_per_million)
            && self.land_out_of_order(&mut file);
        if reordered {
            self.counts.out_of_order_writes += 1;
        } else {
            self.land_a_prefix(&mut file);
        }
        file.unsynced.clear();
        file.contents = file.durable.clone();
        self.inodes.insert(inode, file);
    }

    /// The unsynced writes reached the disk in order until the power failed: any prefix of
    /// them, the last one kept possibly torn at any byte.
    fn land_a_prefix(&mut self, file: &mut Inode) {
        let changes = std::mem::take(&mut file.unsynced);
        let kept = self.prng.range(0, changes.len() as u64 + 1) as usize;
        for (position, change) in changes.iter().take(kept).enumerate() {
            let last = position + 1 == kept;
            match change {
                Change::Write { offset, bytes } if last && self.prng.chance(1, 2) => {
                    let torn_length = self.prng.range(0, bytes.len() as u64) as usize;
                    write_at(&mut file.durable, *offset, &bytes[..torn_length]);
                    self.counts.torn_writes += 1;
                }
                _ => change.apply(&mut file.durable),
            }
        }
    }

    /// Write-back out of order: the cached file reached the disk sector by sector (each
    /// sector whole or not at all) up to a random sector boundary, except a run of whole
    /// sectors past the synced length, which read as zeros. False when the unsynced part
    /// is too short to hold a hole with data after it.
    fn land_out_of_order(&mut self, file: &mut Inode) -> bool {
        let synced = file.durable.len() as u64;
        let cached = file.contents.len() as u64;
        let first_hole = synced.div_ceil(SECTOR_BYTES);
        let sectors = cached.div_ceil(SECTOR_BYTES);
        if first_hole + 2 > sectors {
            return false;
        }
        let hole_start = self.prng.range(first_hole, sectors - 1);
        let hole_end = self.prng.range(hole_start + 1, sectors);
        let end_sector = self.prng.range(hole_end + 1, sectors + 1);
        let end = (end_sector * SECTOR_BYTES).min(cached) as usize;
        // What was synced stays as it was on the disk (a flipped bit included).
        let mut durable = file.durable.clone();
        durable.resize(end.max(durable.len()), 0);
        durable[synced as usize..end].copy_from_slice(&file.contents[synced as usize..end]);
        durable.truncate(end);
        let hole = (hole_start * SECTOR_BYTES) as usize..(hole_end * SECTOR_BYTES) as usize;
        durable[hole].fill(0);
        file.durable = durable;
        true
    }

    fn flip_a_synced_bit(&mut self) {
        let candidates: Vec<u64> = self
            .durable_names
            .values()
            .copied()
            .filter(|inode| self.inodes.get(inode).is_some_and(|file| !file.durable.is_empty()))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let inode = candidates[self.prng.range(0, candidates.len() as u64) as usize];
        let file = self.inodes.get_mut(&inode).expect("a candidate exists");
        let bit = self.prng.range(0, file.durable.len() as u64 * 8);
        file.durable[(bit / 8) as usize] ^= 1 << (bit % 8);
        self.counts.bits_flipped += 1;
    }
}

#[derive(Debug)]
struct MemoryAppendFile {
    state: Arc<Mutex<MemoryState>>,
    inode: u64,
    epoch: u64,
}

impl Write for MemoryAppendFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.state.lock().append(self.inode, self.epoch, bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AppendFile for MemoryAppendFile {
    fn sync(&mut self) -> io::Result<()> {
        self.state.lock().sync_inode(self.inode, self.epoch)
    }
}

impl MemoryFileSystem {
    /// An empty disk (only `/` exists) whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: DiskFaults) -> MemoryFileSystem {
        let state = MemoryState {
            inodes: BTreeMap::new(),
            next_inode: 1,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending_names: BTreeMap::new(),
            directories: BTreeSet::from([PathBuf::from("/")]),
            faults,
            counts: FaultCounts::default(),
            prng: Prng::new(seed),
            epoch: 0,
        };
        MemoryFileSystem { state: Arc::new(Mutex::new(state)) }
    }

    /// A power loss: afterwards the disk holds what survived (see the module comment), and
    /// handles opened before it fail.
    pub fn crash(&self) {
        let mut state = self.state.lock();
        let bit_flip_per_million = state.faults.bit_flip_per_million;
        if state.chance(bit_flip_per_million) {
            state.flip_a_synced_bit();
        }
        let directories: Vec<PathBuf> = state.pending_names.keys().cloned().collect();
        for dir in directories {
            let changes = state.pending_names.remove(&dir).unwrap_or_default();
            let kept = state.prng.range(0, changes.len() as u64 + 1) as usize;
            for change in &changes[..kept] {
                change.apply(&mut state.durable_names);
            }
        }
        let inodes: Vec<u64> = state.inodes.keys().copied().collect();
        for inode in inodes {
            state.crash_inode(inode);
        }
        state.names = state.durable_names.clone();
        state.collect_garbage();
        state.epoch += 1;
        state.counts.crashes += 1;
    }

    /// Replaces the fault rates (a test turns faults off to check what survived).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.state.lock().faults = faults;
    }

    /// What the faults have done so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.state.lock().counts
    }

    /// Flips one bit of a file's synced and live contents (a targeted fault for tests).
    pub fn flip_bit(&self, path: &Path, byte_offset: usize, bit: u8) -> io::Result<()> {
        let mut state = self.state.lock();
        let inode = state.inode_of(path)?;
        let file = state.inodes.get_mut(&inode).expect("named inodes exist");
        for buffer in [&mut file.contents, &mut file.durable] {
            if let Some(byte) = buffer.get_mut(byte_offset) {
                *byte ^= 1 << (bit % 8);
            }
        }
        Ok(())
    }
}

impl FileSystem for MemoryFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.directories.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        state.check_directory(dir)?;
        let names = state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.inode_of(path)?;
        Ok(state.inodes[&inode].contents.clone())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let state = self.state.lock();
        let inode = state.inode_of(path)?;
        Ok(state.inodes[&inode].contents.len() as u64)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        Ok(Box::new(Cursor::new(self.read(path)?)))
    }

    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.state.lock();
        let dir = parent_directory(path);
        state.check_directory(&dir)?;
        let inode = match state.names.get(path).copied() {
            Some(_) if exclusive => {
                let message = format!("file exists: {}", path.display());
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, message));
            }
            Some(inode) => {
                let file = state.inodes.get_mut(&inode).expect("named inodes exist");
                file.contents.clear();
                file.unsynced.push(Change::SetLength(0));
                inode
            }
            None => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Inode::default());
                state.change_name(NameChange::Link { path: path.to_path_buf(), inode }, dir);
                inode
            }
        };
        let epoch = state.epoch;
        Ok(Box::new(MemoryAppendFile { state: Arc::clone(&self.state), inode, epoch }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let state = self.state.lock();
        let inode = state.inode_of(path)?;
        let epoch = state.epoch;
        Ok(Box::new(MemoryAppendFile { state: Arc::clone(&self.state), inode, epoch }))
    }

    fn truncate(&self, path: &Path, length_bytes: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        let inode = state.inode_of(path)?;
        let file = state.inodes.get_mut(&inode).expect("named inodes exist");
        file.contents.resize(length_bytes as usize, 0);
        file.unsynced.push(Change::SetLength(length_bytes));
        let epoch = state.epoch;
        state.sync_inode(inode, epoch)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let inode = state.inode_of(from)?;
        let dir = parent_directory(from);
        assert_eq!(dir, parent_directory(to), "memory file system: rename across directories");
        let change = NameChange::Rename { from: from.to_path_buf(), to: to.to_path_buf(), inode };
        state.change_name(change, dir);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.inode_of(path)?;
        state.change_name(NameChange::Unlink { path: path.to_path_buf() }, parent_directory(path));
        Ok(())
    }

    fn sync_directory(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check_directory(dir)?;
        let sync_error_per_million = state.faults.sync_error_per_million;
        if state.chance(sync_error_per_million) {
            state.counts.sync_errors += 1;
            return Err(injected(io::ErrorKind::Other, "directory fsync failed"));
        }
        let changes = state.pending_names.remove(dir).unwrap_or_default();
        for change in &changes {
            change.apply(&mut state.durable_names);
        }
        state.collect_garbage();
        Ok(())
    }

    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        let state = self.state.lock();
        state.check_directory(dir)?;
        match state.faults.capacity_bytes {
            0 => Ok(u64::MAX),
            capacity => Ok(capacity.saturating_sub(state.live_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn disk() -> MemoryFileSystem {
        let disk = MemoryFileSystem::new(7, DiskFaults::default());
        disk.create_dir_all(Path::new("/data")).unwrap();
        disk
    }

    #[test]
    fn synced_data_under_a_synced_name_survives_every_crash() {
        for seed in 0..50 {
            let disk = MemoryFileSystem::new(seed, DiskFaults::default());
            disk.create_dir_all(Path::new("/data")).unwrap();
            let path = Path::new("/data/file");
            let mut file = disk.create(path, true).unwrap();
            file.write_all(b"synced").unwrap();
            file.sync().unwrap();
            disk.sync_directory(Path::new("/data")).unwrap();
            file.write_all(b" and more").unwrap();
            disk.crash();
            let contents = disk.read(path).unwrap();
            assert!(contents.starts_with(b"synced"), "seed {seed}: {contents:?}");
            assert!(b"synced and more".starts_with(&contents), "seed {seed}: {contents:?}");
            assert!(file.write_all(b"x").is_err(), "a handle from before the crash fails");
        }
    }

    #[test]
    fn a_crash_can_tear_unsynced_writes_and_forget_an_unsynced_name() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..200 {
            let disk = MemoryFileSystem::new(seed, DiskFaults::default());
            disk.create_dir_all(Path::new("/data")).unwrap();
            let mut file = disk.create(Path::new("/data/new"), true).unwrap();
            file.write_all(b"abcdef").unwrap();
            file.sync().unwrap();
            disk.crash();
            outcomes.insert(disk.read(Path::new("/data/new")).ok());
        }
        assert!(outcomes.contains(&None), "the unsynced name vanished in some crash");
        assert!(outcomes.contains(&Some(b"abcdef".to_vec())), "and survived in another");
        let mut torn = BTreeSet::new();
        for seed in 0..200 {
            let disk = MemoryFileSystem::new(seed, DiskFaults::default());
            disk.create_dir_all(Path::new("/data")).unwrap();
            let path = Path::new("/data/log");
            let mut file = disk.create(path, true).unwrap();
            file.sync().unwrap();
            disk.sync_directory(Path::new("/data")).unwrap();
            file.write_all(b"0123456789").unwrap();
            file.write_all(b"abcdefghij").unwrap();
            disk.crash();
            torn.insert(disk.read(path).unwrap().len());
        }
        assert!(torn.iter().any(|length| length % 10 != 0), "some write was torn: {torn:?}");
        assert!(torn.contains(&0) && torn.contains(&20), "{torn:?}");
    }

    #[test]
    fn rename_is_atomic_and_durable_once_the_directory_is_synced() {
        let disk = disk();
        let mut file = disk.create(Path::new("/data/a.tmp"), false).unwrap();
        file.write_all(b"new").unwrap();
        file.sync().unwrap();
        disk.rename(Path::new("/data/a.tmp"), Path::new("/data/a")).unwrap();
        disk.sync_directory(Path::new("/data")).unwrap();
        disk.crash();
        assert_eq!(disk.list(Path::new("/data")).unwrap(), vec!["a".to_string()]);
        let mut read_back = Vec::new();
        disk.open_read(Path::new("/data/a")).unwrap().read_to_end(&mut read_back).unwrap();
        assert_eq!(read_back, b"new");
    }

    #[test]
    fn injected_errors_and_a_full_disk_fail_writes_with_the_right_kind() {
        let faults = DiskFaults { capacity_bytes: 8, ..DiskFaults::default() };
        let disk = MemoryFileSystem::new(1, faults);
        disk.create_dir_all(Path::new("/data")).unwrap();
        let mut file = disk.create(Path::new("/data/f"), true).unwrap();
        file.write_all(b"12345678").unwrap();
        assert_eq!(disk.available_bytes(Path::new("/data")).unwrap(), 0);
        let full = file.write_all(b"9").unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        let faults = DiskFaults { sync_error_per_million: 1_000_000, ..DiskFaults::default() };
        disk.set_faults(faults);
        assert!(file.sync().is_err());
        assert!(disk.sync_directory(Path::new("/data")).is_err());
        assert_eq!(disk.fault_counts().sync_errors, 2);
    }

    #[test]
    fn bit_flips_and_out_of_order_writes_happen_at_their_rates() {
        let faults = DiskFaults {
            bit_flip_per_million: 1_000_000,
            out_of_order_per_million: 1_000_000,
            ..DiskFaults::default()
        };
        let mut holes = 0;
        for seed in 0..100 {
            let disk = MemoryFileSystem::new(seed, faults);
            disk.create_dir_all(Path::new("/data")).unwrap();
            let path = Path::new("/data/log");
            let mut file = disk.create(path, true).unwrap();
            file.write_all(&[1; 16]).unwrap();
            file.sync().unwrap();
            disk.sync_directory(Path::new("/data")).unwrap();
            for _ in 0..4 {
                file.write_all(&[2; 600]).unwrap();
            }
            disk.crash();
            let contents = disk.read(path).unwrap();
            assert_eq!(contents[..16].iter().filter(|&&byte| byte != 1).count(), 1, "one flip");
            let tail = &contents[16..];
            holes += usize::from(
                tail.windows(16).any(|window| window == [0; 16]) && tail.ends_with(&[2; 16]),
            );
        }
        assert!(holes > 0, "some crash left a zero-filled hole before a later write");
    }
}
