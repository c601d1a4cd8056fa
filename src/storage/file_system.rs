//! The file-system seam: the few directory and file operations the WAL, the snapshots and
//! the system file need, behind one trait, so the same storage code runs on the real disk in
//! the daemon and on `MemoryFileSystem` (with seeded crashes, torn writes and I/O errors) in
//! the simulator and the tests.
//!
//! The contract is POSIX's, narrowed to what storage relies on: a write is durable only once
//! its file is synced; a created, renamed or removed name is durable only once its
//! directory is synced; rename within one directory is atomic. This module owns the
//! interface and the real implementation; it must not decide what to write or when to sync.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened for appending (every write lands at its end).
pub trait AppendFile: Write + Send + fmt::Debug {
    /// Makes every byte written through any handle to this file durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// A file opened for reading.
pub trait ReadFile: Read + Seek + Send {}

impl<T: Read + Seek + Send> ReadFile for T {}

/// The directory and file operations storage uses. Paths are absolute or relative to the
/// process's working directory, as with `std::fs`.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `dir` and its missing parents. (Directories are made durable by syncing
    /// their parent, which the callers do.)
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`, in no particular order; `NotFound` if `dir` is
    /// missing.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// A file's whole contents.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A file's length in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Opens a file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>>;
    /// Creates an empty file for appending; with `exclusive`, fails if it exists, otherwise
    /// truncates an existing one.
    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn AppendFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts a file to `length_bytes` and syncs it.
    fn truncate(&self, path: &Path, length_bytes: u64) -> io::Result<()>;
    /// Renames `from` to `to` (same directory), replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; `NotFound` if it is not there.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in `dir` durable.
    fn sync_directory(&self, dir: &Path) -> io::Result<()>;
    /// Bytes free for this process on the file system holding `dir`.
    fn available_bytes(&self, dir: &Path) -> io::Result<u64>;
}

/// The file system a radiant's storage uses, shared by its threads.
pub type SharedFileSystem = Arc<dyn FileSystem>;

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFileSystem;

impl RealFileSystem {
    /// The real file system as a `SharedFileSystem`.
    pub fn shared() -> SharedFileSystem {
        Arc::new(RealFileSystem)
    }
}

#[derive(Debug)]
struct RealAppendFile(File);

impl Write for RealAppendFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl AppendFile for RealAppendFile {
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl FileSystem for RealFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            // A name that is not UTF-8 is none of ours: storage ignores what it cannot name.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        fs::metadata(path).map(|metadata| metadata.len())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadFile>> {
        Ok(Box::new(io::BufReader::new(File::open(path)?)))
    }

    fn create(&self, path: &Path, exclusive: bool) -> io::Result<Box<dyn AppendFile>> {
        let mut options = OpenOptions::new();
        if exclusive {
            options.append(true).create_new(true);
        } else {
            // Truncating needs write access; every write still goes to the end because
            // nothing here seeks.
            options.write(true).create(true).truncate(true);
        }
        Ok(Box::new(RealAppendFile(options.open(path)?)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        // `O_APPEND`, so writes land at the end even after `truncate`.
        Ok(Box::new(RealAppendFile(OpenOptions::new().append(true).open(path)?)))
    }

    fn truncate(&self, path: &Path, length_bytes: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(length_bytes)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_directory(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn available_bytes(&self, dir: &Path) -> io::Result<u64> {
        let stats = rustix::fs::statvfs(dir)?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }
}

/// A radiant's data directory on the file system that holds it: what every storage
/// function is given, so the same code runs on the real disk and on a simulated one.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub file_system: SharedFileSystem,
    pub path: PathBuf,
}

impl DataDir {
    /// `path` on the real file system.
    pub fn real(path: &Path) -> DataDir {
        DataDir { file_system: RealFileSystem::shared(), path: path.to_path_buf() }
    }

    /// The file system, for calling its operations.
    pub fn fs(&self) -> &dyn FileSystem {
        &*self.file_system
    }

    /// A path inside the data directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_file_system_appends_renames_lists_and_truncates() {
        let directory = tempfile::tempdir().unwrap();
        let file_system = RealFileSystem;
        let path = directory.path().join("a");
        let mut file = file_system.create(&path, true).unwrap();
        file.write_all(b"hello ").unwrap();
        file.sync().unwrap();
        assert!(file_system.create(&path, true).is_err(), "exclusive create of an existing file");
        let mut again = file_system.open_append(&path).unwrap();
        again.write_all(b"world").unwrap();
        assert_eq!(file_system.read(&path).unwrap(), b"hello world");
        file_system.truncate(&path, 5).unwrap();
        again.write_all(b"!").unwrap();
        assert_eq!(file_system.read(&path).unwrap(), b"hello!");
        let renamed = directory.path().join("b");
        file_system.rename(&path, &renamed).unwrap();
        file_system.sync_directory(directory.path()).unwrap();
        assert_eq!(file_system.list(directory.path()).unwrap(), vec!["b".to_string()]);
        assert_eq!(file_system.file_len(&renamed).unwrap(), 6);
        let mut read_back = String::new();
        file_system.open_read(&renamed).unwrap().read_to_string(&mut read_back).unwrap();
        assert_eq!(read_back, "hello!");
        assert!(file_system.available_bytes(directory.path()).unwrap() > 0);
        file_system.remove(&renamed).unwrap();
        let missing = file_system.remove(&renamed).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
