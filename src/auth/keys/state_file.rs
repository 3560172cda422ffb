//! The key table on disk: one JSON document, replaced whole and atomically (write a temp file
//! beside it, fsync it, rename it over the old one, fsync the directory), so a crash at any
//! moment leaves either the old table or the new one, never a mix.

use super::KeyRecord;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

/// The records in `path` (none when it does not exist yet).
pub fn load(path: &Path) -> Result<Vec<KeyRecord>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "keys.state_file: cannot read {}: {e}",
                path.display()
            ))
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "keys.state_file: {} is not a key table: {e}",
            path.display()
        )
    })?;
    Ok(file.keys)
}

/// Replace `path` with `records`.
pub fn write(path: &Path, records: &[KeyRecord]) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(&StateFile {
        version: 1,
        keys: records.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = dir {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
