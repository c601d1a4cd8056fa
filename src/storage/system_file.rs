//! The system file: a radiant's `SystemRecord` (cluster id, permanent id, bootstrap and
//! council votes, configurations) in `DATA_DIR/system`. Written whole, atomically
//! (temporary file, fsync, rename, directory fsync), so a crash leaves the old record or
//! the new one, never a mix.

use std::io::Write;

use crate::core::system::SystemRecord;
use crate::storage::file_system::DataDir;

/// The file's name in the data directory.
pub const SYSTEM_FILE: &str = "system";

/// Why the system file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SystemFileError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is damaged or from an incompatible version.
    #[error(
        "{path} is unusable ({reason}); this radiant cannot tell which system it belongs to. \
         Restore the file from a backup, or empty the data directory to join as a new radiant"
    )]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the record; `None` when the radiant never wrote one (a brand-new data dir).
pub fn read(data_dir: &DataDir) -> Result<Option<SystemRecord>, SystemFileError> {
    let path = data_dir.join(SYSTEM_FILE);
    let display = path.display().to_string();
    let bytes = match data_dir.fs().read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SystemFileError::Read { path: display, source }),
    };
    let record = SystemRecord::decode(&bytes)
        .map_err(|reason| SystemFileError::Damaged { path: display.clone(), reason })?;
    // A record names this radiant's system: a malformed configuration in it is damage.
    for configuration in [&record.configuration, &record.accepted].into_iter().flatten() {
        configuration.check().map_err(|reason| SystemFileError::Damaged {
            path: display.clone(),
            reason: format!("configuration {}: {reason}", configuration.number),
        })?;
    }
    Ok(Some(record))
}

/// Replaces the record durably.
pub fn write(data_dir: &DataDir, record: &SystemRecord) -> std::io::Result<()> {
    let fs = data_dir.fs();
    let temporary = data_dir.join(format!("{SYSTEM_FILE}.tmp"));
    let mut file = fs.create(&temporary, false)?;
    file.write_all(&record.encode())?;
    file.sync()?;
    drop(file);
    fs.rename(&temporary, &data_dir.join(SYSTEM_FILE))?;
    fs.sync_directory(&data_dir.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_reads_back_and_a_missing_one_is_none() {
        let temporary = tempfile::tempdir().expect("tempdir");
        let directory = DataDir::real(temporary.path());
        assert!(read(&directory).expect("readable").is_none());
        let record = SystemRecord { bootstrap_term: 4, ..SystemRecord::default() };
        write(&directory, &record).expect("written");
        assert_eq!(read(&directory).expect("readable"), Some(record));
        let malformed = SystemRecord {
            configuration: Some(radiant_protocol::Configuration::default()),
            ..SystemRecord::default()
        };
        write(&directory, &malformed).expect("written");
        let error = read(&directory).unwrap_err().to_string();
        assert!(error.contains("configuration 0"), "{error}");
        std::fs::write(directory.join(SYSTEM_FILE), b"junk").expect("overwrite");
        let error = read(&directory).unwrap_err().to_string();
        assert!(error.contains("empty the data directory"), "{error}");
    }
}
