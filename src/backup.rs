//! `repogate backup` and `repogate restore`: a consistent copy of the store in
//! one file, taken and put back while the gateway is stopped.
//!
//! sled's file lock guarantees "stopped": a running gateway holds it, so the
//! commands fail with a clear message instead of copying a store in motion.
//! The file is JSON lines: a header naming the store format, then one line
//! per record with its tree, key and value in base64.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, FORMAT_VERSION};

/// What a backup file says about itself.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    repogate_backup: u32,
    store_format: u32,
    created_at: String,
}

/// One stored record.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    tree: String,
    key: String,
    value: String,
}

/// Why a backup or restore failed; nothing is half-written on error.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store could not be opened (for example: the gateway is running).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The backup file is not one of ours, or is damaged.
    #[error("{path}: not a usable repogate backup: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Restoring over existing data would mix two stores.
    #[error("the store at {0} already holds data; move it away before restoring")]
    NotEmpty(String),
}

fn file_error(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Writes every record of the store at `store_path` to `to`; returns the count.
/// The file appears only when complete (written aside, then renamed).
pub fn backup(store_path: &Path, to: &Path) -> Result<usize, BackupError> {
    let store = Store::open(store_path)?;
    let partial = to.with_extension("partial");
    let file = std::fs::File::create(&partial).map_err(file_error(&partial))?;
    let mut out = BufWriter::new(file);

    let header = Header {
        repogate_backup: 1,
        store_format: FORMAT_VERSION,
        created_at: crate::admin::tokens::iso(crate::now_ms()),
    };
    let mut count = 0;
    write_line(&mut out, &header).map_err(file_error(&partial))?;
    for (tree, key, value) in store.records()? {
        let line = Line {
            tree,
            key: B64.encode(key),
            value: B64.encode(value),
        };
        write_line(&mut out, &line).map_err(file_error(&partial))?;
        count += 1;
    }

    let file = out
        .into_inner()
        .map_err(|e| file_error(&partial)(e.into_error()))?;
    file.sync_all().map_err(file_error(&partial))?;
    std::fs::rename(&partial, to).map_err(file_error(to))?;
    Ok(count)
}

/// Loads a backup into an empty store at `store_path`; returns the count.
pub fn restore(store_path: &Path, from: &Path) -> Result<usize, BackupError> {
    let invalid = |reason: String| BackupError::Invalid {
        path: from.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(from).map_err(file_error(from))?;
    let mut lines = BufReader::new(file).lines();
    let first = lines
        .next()
        .ok_or_else(|| invalid("the file is empty".into()))?
        .map_err(file_error(from))?;
    let header: Header =
        serde_json::from_str(&first).map_err(|e| invalid(format!("header: {e}")))?;
    if header.repogate_backup != 1 || header.store_format > FORMAT_VERSION {
        return Err(invalid(format!(
            "backup version {} of store format {}; this repogate reads store format {FORMAT_VERSION}",
            header.repogate_backup, header.store_format
        )));
    }

    // Decode everything before writing anything, so a damaged file changes nothing.
    let mut records = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(file_error(from))?;
        let parsed: Line =
            serde_json::from_str(&line).map_err(|e| invalid(format!("line {}: {e}", n + 2)))?;
        let key = B64
            .decode(&parsed.key)
            .map_err(|e| invalid(format!("line {}: key: {e}", n + 2)))?;
        let value = B64
            .decode(&parsed.value)
            .map_err(|e| invalid(format!("line {}: value: {e}", n + 2)))?;
        records.push((parsed.tree, key, value));
    }

    let store = Store::open(store_path)?;
    if store.holds_data()? {
        return Err(BackupError::NotEmpty(store_path.display().to_string()));
    }
    store.load_records(&records)?;
    Ok(records.len())
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
