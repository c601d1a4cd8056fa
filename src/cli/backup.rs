//! `radiant backup` and `radiant restore`.
//!
//! A backup reads every shard through `ReadShard`: the herald of the shard's order copies
//! it at its applied index (a linearizable read, so the copy holds every write
//! acknowledged before the copy was asked for), and the backup pages through that copy
//! while writes go on. Each shard is consistent at its own order's index; shards of
//! different orders are not taken at one instant (orders commit independently).
//!
//! The backup directory holds one `shard-NNNNN.pairs` file per non-empty shard (records of
//! `u32` key length, key, `u32` value length, value, big-endian, ascending by key) and,
//! written last, `manifest.json`: the source's configuration, each shard's index, key
//! count, bytes, CRC32C of its file and a content digest. A directory without a manifest
//! is an unfinished backup.
//!
//! A restore checks every file against the manifest before writing anything, refuses a
//! target that holds any key, writes the pairs as batches (each one log entry, with a
//! session, so a resent batch applies once), then reads the whole target back the same
//! way a backup does and compares its digest with the manifest's.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::{Client, ShardRoutes};
use crate::error_chain;
use radiant_protocol::Limits;

/// The manifest's file name.
pub(super) const MANIFEST_FILE: &str = "manifest.json";
/// The manifest's `format`: a later layout gets a new one.
const FORMAT: &str = "radiant-backup-1";
/// Bytes of keys and values asked for per page, unless `--page-bytes` says otherwise.
pub(super) const DEFAULT_PAGE_BYTES: u32 = 1 << 20;
/// Times one shard is started again after its copy was lost (its herald restarted or
/// lost its role mid-backup) before the backup gives up.
const SHARD_ATTEMPTS: u32 = 5;
/// Most bytes of keys and values in one restore batch.
const BATCH_BYTES: usize = 256 << 10;

/// Pairs of one shard, ascending by key.
type Pairs = [(Bytes, Bytes)];

/// What `walk_shard` hands each page's pairs to.
type PageVisitor<'a> = &'a mut dyn FnMut(&Pairs) -> Result<(), String>;

/// A restore batch being gathered: its pairs and their bytes.
type PendingBatch<'a> = (Vec<&'a (Bytes, Bytes)>, usize);

/// An order-independent digest of a set of pairs: the wrapping sum of every pair's
/// SHA-256 (its first 16 bytes), with the counts. Independent of order so that a restore
/// into a system with another shard count can be checked against the backup whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ContentDigest {
    sum: u128,
    keys: u64,
    bytes: u64,
}

impl ContentDigest {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut hasher = Sha256::new();
        for part in [key, value] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        let hash = hasher.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    fn add_all(&mut self, pairs: &Pairs) {
        for (key, value) in pairs {
            self.add(key, value);
        }
    }

    fn merge(&mut self, other: ContentDigest) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.keys += other.keys;
        self.bytes += other.bytes;
    }

    fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// What the manifest says of one shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ShardEntry {
    shard: u32,
    /// The order that served it, when the source said.
    order: Option<u64>,
    /// Its order's applied index the copy was taken at.
    index: u64,
    keys: u64,
    bytes: u64,
    digest: String,
    /// Its pairs file (none for an empty shard).
    file: Option<String>,
    file_crc32c: Option<u32>,
}

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    created_unix_ms: u64,
    /// The address the backup was taken through.
    source: String,
    shard_count: u32,
    /// The source's committed configuration number (0 for a static order).
    configuration: u64,
    /// The source's system as its status showed it (orders, radiants), or null.
    system: serde_json::Value,
    keys: u64,
    bytes: u64,
    digest: String,
    shards: Vec<ShardEntry>,
}

/// The pairs file name of `shard`.
fn file_name(shard: u32) -> String {
    format!("shard-{shard:05}.pairs")
}

/// The shard count a radiant's status gives.
fn shard_count_of(client: &mut Client) -> Result<(u32, serde_json::Value), String> {
    let status = client.status_document().map_err(|error| error_chain(&error))?;
    let count = status["shard_count"]
        .as_u64()
        .and_then(|count| u32::try_from(count).ok())
        .filter(|&count| (1..=radiant_protocol::configuration::MAX_SHARDS as u32).contains(&count))
        .ok_or_else(|| {
            format!(
                "radiant {} gave no usable shard_count in its status (is it older than \
                 this radiant command?)",
                client.address()
            )
        })?;
    Ok((count, status))
}

/// Reads the whole of `shard` from one copy, handing each page's pairs to `visit`;
/// returns the copy's index and the digest of its pairs. A lost copy (any failed page)
/// starts the shard again, at most `SHARD_ATTEMPTS` times; `restart` is called before
/// each new attempt.
fn walk_shard(
    client: &mut Client,
    (shard, page_bytes): (u32, u32),
    visit: PageVisitor<'_>,
    restart: &mut dyn FnMut() -> Result<(), String>,
) -> Result<(u64, ContentDigest), String> {
    let mut last_error = String::new();
    for attempt in 0..SHARD_ATTEMPTS {
        if attempt > 0 {
            restart()?;
        }
        let first = client
            .read_shard(shard, 0, None, page_bytes)
            .map_err(|error| format!("shard {shard}: {}", error_chain(&error)))?;
        let mut page = first.clone();
        let mut digest = ContentDigest::default();
        let mut later_page = false;
        let outcome = loop {
            visit(&page.pairs)?;
            digest.add_all(&page.pairs);
            let read = digest.keys;
            if page.last {
                break Ok(());
            }
            // Every later page holds at least one pair: a radiant that sends more pairs
            // than its copy has, or an empty page, would keep the walk going forever.
            if read > first.total_keys || (later_page && page.pairs.is_empty()) {
                break Err(format!(
                    "the pages do not add up to the copy's {} keys",
                    first.total_keys
                ));
            }
            later_page = true;
            let after = page.pairs.last().map(|(key, _)| key.clone()).or(page.after.clone());
            match client.read_shard(shard, first.cursor, after, page_bytes) {
                Ok(next) if next.cursor == first.cursor && next.index == first.index => page = next,
                Ok(next) => {
                    break Err(format!(
                        "copy changed under the backup (cursor {} index {}, then cursor {} \
                         index {})",
                        first.cursor, first.index, next.cursor, next.index
                    ))
                }
                Err(error) => break Err(error_chain(&error)),
            }
        };
        match outcome {
            Ok(()) if digest.keys == first.total_keys => return Ok((first.index, digest)),
            Ok(()) => {
                last_error = format!("read {} keys of a copy of {}", digest.keys, first.total_keys);
            }
            Err(error) => last_error = error,
        }
    }
    Err(format!("shard {shard} could not be read whole in {SHARD_ATTEMPTS} attempts: {last_error}"))
}

/// A file written whole and made durable, or not at all (`create`, `write`, `finish`).
struct DurableFile {
    path: PathBuf,
    writer: std::io::BufWriter<std::fs::File>,
    crc: u32,
}

impl DurableFile {
    fn create(path: PathBuf) -> Result<DurableFile, String> {
        let file = std::fs::File::create(&path)
            .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        Ok(DurableFile { path, writer: std::io::BufWriter::new(file), crc: 0 })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.writer
            .write_all(bytes)
            .map_err(|error| format!("cannot write {}: {error}", self.path.display()))
    }

    fn finish(self) -> Result<u32, String> {
        let failed =
            |error: std::io::Error| format!("cannot write {}: {error}", self.path.display());
        let file = self.writer.into_inner().map_err(|error| failed(error.into_error()))?;
        file.sync_all().map_err(failed)?;
        Ok(self.crc)
    }
}

fn sync_directory(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|error| format!("cannot fsync directory {}: {error}", dir.display()))
}

/// Backs up one shard into `out`; its manifest entry.
fn backup_shard(
    client: &mut Client,
    (shard, page_bytes): (u32, u32),
    out: &Path,
) -> Result<ShardEntry, String> {
    let path = out.join(file_name(shard));
    let file = std::cell::RefCell::new(DurableFile::create(path.clone())?);
    let mut visit = |pairs: &[(Bytes, Bytes)]| {
        let mut file = file.borrow_mut();
        let mut record = Vec::new();
        for (key, value) in pairs {
            record.clear();
            encode_record(&mut record, key, value);
            file.write(&record)?;
        }
        Ok(())
    };
    let mut restart = || {
        *file.borrow_mut() = DurableFile::create(path.clone())?;
        Ok(())
    };
    let (index, digest) = walk_shard(client, (shard, page_bytes), &mut visit, &mut restart)?;
    let crc = file.into_inner().finish()?;
    let (file, file_crc32c) = if digest.keys == 0 {
        std::fs::remove_file(&path)
            .map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
        (None, None)
    } else {
        (Some(file_name(shard)), Some(crc))
    };
    Ok(ShardEntry {
        shard,
        order: None,
        index,
        keys: digest.keys,
        bytes: digest.bytes,
        digest: digest.hex(),
        file,
        file_crc32c,
    })
}

/// `radiant backup`, printing what it did.
pub(super) fn run_backup(
    client: &mut Client,
    out: &Path,
    page_bytes: u32,
) -> Result<ExitCode, String> {
    let began = std::time::Instant::now();
    let summary = backup(client, out, page_bytes)?;
    println!(
        "backed up {} shards, {} keys, {} bytes of keys and values to {} in {:.1} s (digest {})",
        summary.shards,
        summary.keys,
        summary.bytes,
        out.display(),
        began.elapsed().as_secs_f64(),
        summary.digest
    );
    Ok(ExitCode::SUCCESS)
}

/// `radiant restore`, printing what it did.
pub(super) fn run_restore(client: &mut Client, dir: &Path) -> Result<ExitCode, String> {
    let summary = restore(client, dir)?;
    println!(
        "restored {} keys, {} bytes of keys and values into {} shards; read back, the system \
         holds exactly the backup (digest {})",
        summary.keys, summary.bytes, summary.shards, summary.digest
    );
    Ok(ExitCode::SUCCESS)
}

/// What a finished backup or restore did, for the one line printed.
pub(super) struct Summary {
    pub(super) shards: u32,
    pub(super) keys: u64,
    pub(super) bytes: u64,
    pub(super) digest: String,
}

/// `radiant backup`: every shard of the system `client` reaches into `out` (created; it
/// must not exist or be empty).
pub(super) fn backup(client: &mut Client, out: &Path, page_bytes: u32) -> Result<Summary, String> {
    let occupied = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(format!(
            "{} exists and is not empty: give a new directory for the backup",
            out.display()
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|error| format!("cannot create {}: {error}", out.display()))?;
    let source = client.address().to_string();
    let (shard_count, status) = shard_count_of(client)?;
    let routes = ShardRoutes::from_status(&status);
    let mut shards = Vec::with_capacity(shard_count as usize);
    let mut total = ContentDigest::default();
    for shard in 0..shard_count {
        let mut entry = backup_shard(client, (shard, page_bytes), out)?;
        entry.order = match &routes {
            Some(routes) => routes.owner_of_shard(shard).map(|(order_id, _)| order_id),
            None => status["order"].as_u64(),
        };
        let sum = u128::from_str_radix(&entry.digest, 16).unwrap_or_default();
        total.merge(ContentDigest { sum, keys: entry.keys, bytes: entry.bytes });
        shards.push(entry);
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64),
        source,
        shard_count,
        configuration: status["system"]["configuration"].as_u64().unwrap_or(0),
        system: status["system"].clone(),
        keys: total.keys,
        bytes: total.bytes,
        digest: total.hex(),
        shards,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|error| format!("cannot encode the manifest: {error}"))?;
    // The pairs files are durable and named in the directory before the manifest says
    // the backup is whole.
    sync_directory(out)?;
    let mut file = DurableFile::create(out.join(MANIFEST_FILE))?;
    file.write(text.as_bytes())?;
    file.finish()?;
    sync_directory(out)?;
    Ok(Summary { shards: shard_count, keys: total.keys, bytes: total.bytes, digest: total.hex() })
}

/// Reads and checks `dir`'s manifest.
fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "cannot read {}: {error} (a backup directory without it is unfinished)",
            path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a backup manifest: {error}", path.display()))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{}: format {:?} is not {FORMAT:?}, the one this radiant command reads",
            path.display(),
            manifest.format
        ));
    }
    let numbered = manifest.shards.iter().enumerate().all(|(at, entry)| entry.shard as usize == at);
    if manifest.shards.len() != manifest.shard_count as usize || !numbered {
        return Err(format!(
            "{}: it lists {} shards for a shard_count of {}, or not in order",
            path.display(),
            manifest.shards.len(),
            manifest.shard_count
        ));
    }
    Ok(manifest)
}

/// Appends one pairs-file record: `u32` key length, key, `u32` value length, value.
fn encode_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    for part in [key, value] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
}

/// One length-prefixed field of a pairs file at `*at`, at most `most` bytes (checked
/// before anything is taken); moves `*at` past it.
fn read_field(bytes: &Bytes, at: &mut usize, most: u32, what: &str) -> Result<Bytes, String> {
    let offset = *at;
    let length = bytes
        .get(offset..offset + 4)
        .map(|raw| u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
        .ok_or_else(|| format!("a {what} length at byte {offset} is cut off"))?;
    if length > most {
        return Err(format!("a {what} of {length} bytes at byte {offset} is over {most}"));
    }
    let start = offset + 4;
    let end = start + length as usize;
    if end > bytes.len() {
        return Err(format!("a {what} at byte {offset} runs past the end"));
    }
    *at = end;
    Ok(bytes.slice(start..end))
}

/// Reads one shard's pairs file and checks it against its manifest entry: the CRC32C,
/// every record's lengths (against the protocol's limits, before allocating), ascending
/// keys, the key count and the digest.
fn load_shard(
    dir: &Path,
    entry: &ShardEntry,
    shard_count: u32,
) -> Result<Vec<(Bytes, Bytes)>, String> {
    let Some(name) = &entry.file else {
        return if entry.keys == 0 {
            Ok(Vec::new())
        } else {
            Err(format!(
                "the manifest lists {} keys for shard {} but no file",
                entry.keys, entry.shard
            ))
        };
    };
    if *name != file_name(entry.shard) {
        return Err(format!(
            "the manifest names {name:?} for shard {}; expected {:?}",
            entry.shard,
            file_name(entry.shard)
        ));
    }
    let path = dir.join(name);
    let bytes = Bytes::from(
        std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?,
    );
    let damaged = |what: String| {
        format!("{} is damaged: {what}; restore from another copy of the backup", path.display())
    };
    let crc = crc32c::crc32c(&bytes);
    if Some(crc) != entry.file_crc32c {
        return Err(damaged(format!(
            "its checksum is {crc:#010x}, the manifest says {:#010x}",
            entry.file_crc32c.unwrap_or_default()
        )));
    }
    let limits = Limits::DEFAULT;
    let mut pairs = Vec::new();
    let mut digest = ContentDigest::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let key = read_field(&bytes, &mut at, limits.max_key_bytes, "key").map_err(damaged)?;
        let value =
            read_field(&bytes, &mut at, limits.max_value_bytes, "value").map_err(damaged)?;
        let ascending = pairs.last().is_none_or(|(last, _): &(Bytes, Bytes)| *last < key);
        if key.is_empty() || !ascending {
            return Err(damaged("its keys are empty or out of order".to_string()));
        }
        if radiant_protocol::slots::key_shard(&key, shard_count).0 != entry.shard {
            return Err(damaged(format!(
                "key {:?} is not of shard {}",
                String::from_utf8_lossy(&key),
                entry.shard
            )));
        }
        digest.add(&key, &value);
        pairs.push((key, value));
    }
    if digest.keys != entry.keys || digest.hex() != entry.digest {
        return Err(damaged(format!(
            "it holds {} keys with digest {}, the manifest says {} keys with digest {}",
            digest.keys,
            digest.hex(),
            entry.keys,
            entry.digest
        )));
    }
    Ok(pairs)
}

/// Reads every shard of the system `client` reaches: its digest, and each shard's when
/// `per_shard` (a restore into a system of the backup's shard count checks them one by
/// one). Stops at the first key when `stop_at_first_key` (the emptiness check).
fn read_system(
    client: &mut Client,
    shard_count: u32,
    stop_at_first_key: bool,
) -> Result<(ContentDigest, Vec<ContentDigest>), String> {
    let mut total = ContentDigest::default();
    let mut shards = Vec::with_capacity(shard_count as usize);
    for shard in 0..shard_count {
        if stop_at_first_key {
            let first = client
                .read_shard(shard, 0, None, 1)
                .map_err(|error| format!("shard {shard}: {}", error_chain(&error)))?;
            if first.total_keys > 0 {
                return Err(format!(
                    "the target system already holds keys (shard {shard} has {}): a restore \
                     seeds a brand-new system; start one with empty data directories",
                    first.total_keys
                ));
            }
            continue;
        }
        let (mut visit, mut restart) = (|_: &Pairs| Ok(()), || Ok(()));
        let position = (shard, DEFAULT_PAGE_BYTES);
        let (_, digest) = walk_shard(client, position, &mut visit, &mut restart)?;
        total.merge(digest);
        shards.push(digest);
    }
    Ok((total, shards))
}

/// Writes `pairs` as batches of one target shard each.
fn write_pairs(
    client: &mut Client,
    pairs: &[(Bytes, Bytes)],
    target_shards: u32,
) -> Result<(), String> {
    let mut pending: std::collections::BTreeMap<u32, PendingBatch<'_>> =
        std::collections::BTreeMap::new();
    let flush = |client: &mut Client, batch: &mut PendingBatch<'_>| {
        let writes: Vec<(&[u8], Option<&[u8]>)> =
            batch.0.iter().map(|(key, value)| (key.as_ref(), Some(value.as_ref()))).collect();
        batch.0.clear();
        batch.1 = 0;
        if writes.is_empty() {
            return Ok(());
        }
        client.write_batch(&writes, false).map(|_| ()).map_err(|error| error_chain(&error))
    };
    for pair in pairs {
        let shard = radiant_protocol::slots::key_shard(&pair.0, target_shards).0;
        let batch = pending.entry(shard).or_default();
        let size = pair.0.len() + pair.1.len();
        let full = batch.0.len() >= radiant_protocol::MAX_BATCH_WRITES as usize
            || batch.1 + size > BATCH_BYTES;
        if full {
            flush(client, batch)?;
        }
        batch.0.push(pair);
        batch.1 += size;
    }
    for batch in pending.values_mut() {
        flush(client, batch)?;
    }
    Ok(())
}

/// `radiant restore`: checks the backup in `dir` whole, then seeds the empty system
/// `client` reaches with its pairs and checks that the system holds exactly them.
pub(super) fn restore(client: &mut Client, dir: &Path) -> Result<Summary, String> {
    let manifest = read_manifest(dir)?;
    // Every file is checked before anything is written: a damaged backup writes nothing.
    let mut loaded = Vec::with_capacity(manifest.shards.len());
    let mut total = ContentDigest::default();
    for entry in &manifest.shards {
        let pairs = load_shard(dir, entry, manifest.shard_count)?;
        let mut digest = ContentDigest::default();
        digest.add_all(&pairs);
        total.merge(digest);
        loaded.push(pairs);
    }
    if total.hex() != manifest.digest || total.keys != manifest.keys {
        return Err(format!(
            "the shard files hold {} keys with digest {}, the manifest's totals say {} with {}",
            total.keys,
            total.hex(),
            manifest.keys,
            manifest.digest
        ));
    }
    let (target_shards, _) = shard_count_of(client)?;
    read_system(client, target_shards, true)?;
    for pairs in &loaded {
        write_pairs(client, pairs, target_shards)?;
    }
    let (restored, per_shard) = read_system(client, target_shards, false)?;
    if restored != total {
        return Err(format!(
            "after the restore the system holds {} keys ({} bytes, digest {}), the backup \
             {} keys ({} bytes, digest {}): was it written to while restoring?",
            restored.keys,
            restored.bytes,
            restored.hex(),
            total.keys,
            total.bytes,
            total.hex()
        ));
    }
    if target_shards == manifest.shard_count {
        let differs = manifest
            .shards
            .iter()
            .zip(&per_shard)
            .find(|(entry, digest)| digest.hex() != entry.digest || digest.keys != entry.keys);
        if let Some((entry, _)) = differs {
            return Err(format!("shard {} differs from the backup after the restore", entry.shard));
        }
    }
    Ok(Summary { shards: target_shards, keys: total.keys, bytes: total.bytes, digest: total.hex() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_sees_every_byte() {
        let pairs = [("a", "1"), ("b", "2"), ("c", "")];
        let mut forward = ContentDigest::default();
        let mut backward = ContentDigest::default();
        for (key, value) in pairs {
            forward.add(key.as_bytes(), value.as_bytes());
        }
        for (key, value) in pairs.iter().rev() {
            backward.add(key.as_bytes(), value.as_bytes());
        }
        assert_eq!(forward, backward);
        let mut moved = ContentDigest::default();
        // The same bytes split differently between key and value are another pair.
        for (key, value) in [("a1", ""), ("b", "2"), ("c", "")] {
            moved.add(key.as_bytes(), value.as_bytes());
        }
        assert_ne!(forward.sum, moved.sum);
    }

    fn entry_for(dir: &Path, shard_count: u32, keys: &[&str]) -> ShardEntry {
        let shard = radiant_protocol::slots::key_shard(keys[0].as_bytes(), shard_count).0;
        let mut file = DurableFile::create(dir.join(file_name(shard))).expect("create");
        let mut digest = ContentDigest::default();
        for key in keys {
            let mut record = Vec::new();
            encode_record(&mut record, key.as_bytes(), b"value");
            file.write(&record).expect("write");
            digest.add(key.as_bytes(), b"value");
        }
        let crc = file.finish().expect("finish");
        ShardEntry {
            shard,
            order: None,
            index: 1,
            keys: digest.keys,
            bytes: digest.bytes,
            digest: digest.hex(),
            file: Some(file_name(shard)),
            file_crc32c: Some(crc),
        }
    }

    #[test]
    fn a_shard_file_is_read_back_and_any_damage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        // One shard: every key is of it.
        let entry = entry_for(dir.path(), 1, &["a", "b", "c"]);
        let pairs = load_shard(dir.path(), &entry, 1).expect("intact");
        assert_eq!(pairs.len(), 3);
        let path = dir.path().join(file_name(entry.shard));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let error = load_shard(dir.path(), &entry, 1).expect_err("flipped bit");
        assert!(error.contains("damaged") && error.contains("checksum"), "{error}");
        let traversal = ShardEntry { file: Some("../etc/passwd".to_string()), ..entry };
        assert!(load_shard(dir.path(), &traversal, 1).is_err());
    }

    #[test]
    fn a_file_that_passes_its_checksum_but_lies_about_its_lengths_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(0));
        // A key length far over the limit: refused before anything is allocated.
        std::fs::write(&path, [0xFF, 0xFF, 0xFF, 0xFF, b'k']).expect("write");
        let entry = ShardEntry {
            shard: 0,
            order: None,
            index: 1,
            keys: 1,
            bytes: 1,
            digest: String::new(),
            file: Some(file_name(0)),
            file_crc32c: Some(crc32c::crc32c(&[0xFF, 0xFF, 0xFF, 0xFF, b'k'])),
        };
        let error = load_shard(dir.path(), &entry, 1).expect_err("bad length");
        assert!(error.contains("is over"), "{error}");
    }
}
