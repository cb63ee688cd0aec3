//! Where a job keeps its keyed state (`state.backend: memory | disk`), as settings: the state
//! module builds the tables, the runtime hands the choice to every operator subtask.

use std::path::PathBuf;

use super::error::{Result, WeirError};

/// Default memory budget of the disk backend per worker: 512 MiB.
pub const DEFAULT_DISK_MEMORY: u64 = 512 << 20;

/// A job's state backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StateBackend {
    /// Hash maps in memory with copy-on-write snapshots.
    #[default]
    Memory,
    /// An LSM tree per operator subtask on local disk, a cache in front.
    Disk(DiskSettings),
}

/// Settings of the disk backend.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSettings {
    /// Directory the state files go under (a subdirectory per process, removed at exit).
    pub dir: PathBuf,
    /// Bytes of memory the backend may use per worker: block cache, write buffers and the
    /// decoded entries cached in front (approximate).
    pub memory: u64,
    /// Keep a local copy of each checkpoint's state files beside the state, so a worker that
    /// restarts on the same machine reads them from there rather than from checkpoint storage
    /// (Flink's local recovery; on by default).
    pub local_recovery: bool,
}

impl Default for DiskSettings {
    fn default() -> Self {
        DiskSettings {
            dir: std::env::temp_dir().join("weir-state"),
            memory: DEFAULT_DISK_MEMORY,
            local_recovery: true,
        }
    }
}

impl StateBackend {
    /// The backend from its settings as text (command line, environment, SQL `SET`): `backend`
    /// (`memory` or `disk`), and for disk a directory and a memory budget (`512m`, `1Gi`).
    pub fn from_settings(backend: &str, dir: Option<&str>, memory: Option<&str>) -> Result<Self> {
        let mut b = StateBackend::parse("state.backend", backend)?;
        if let StateBackend::Disk(d) = &mut b {
            if let Some(dir) = dir {
                d.dir = PathBuf::from(dir);
            }
            if let Some(m) = memory {
                d.memory = parse_bytes("state.memory", m)?;
            }
        }
        Ok(b)
    }

    /// The backend named `name` (`memory` or `disk`), for configuration keys: `field` names the
    /// setting in the error.
    pub fn parse(field: &str, name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "memory" | "hashmap" | "heap" => Ok(StateBackend::Memory),
            "disk" | "rocksdb" | "fjall" => Ok(StateBackend::Disk(DiskSettings::default())),
            other => Err(WeirError::plan(format!(
                "{field}: unknown state backend `{other}` (expected `memory` or `disk`)"
            ))),
        }
    }

    /// Turns local recovery on or off (disk backend; the memory backend keeps no local copies).
    pub fn set_local_recovery(&mut self, on: bool) {
        if let StateBackend::Disk(d) = self {
            d.local_recovery = on;
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            StateBackend::Memory => "memory",
            StateBackend::Disk(_) => "disk",
        }
    }
}

/// A size in bytes from text: a number of bytes, or with a binary unit (`k`, `m`, `g`, `t`, as
/// `512m`, `512mb`, `512MiB`, `1Gi`, `1GB`: Flink's and Kubernetes' spellings, all 1024-based).
/// `field` names the setting in the error.
pub fn parse_bytes(field: &str, text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || {
        WeirError::plan(format!(
            "{field}: `{text}` is not a size (write bytes, or a number with k, m, g or t, as `512m` or `1Gi`)"
        ))
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_flink_and_kubernetes_spellings() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("512m", 512 << 20),
            ("512mb", 512 << 20),
            ("512MiB", 512 << 20),
            ("1Gi", 1 << 30),
            ("1.5g", 3 << 29),
            ("64 KB", 64 << 10),
        ] {
            assert_eq!(parse_bytes("state.memory", text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "lots", "1x", "0", "-1m"] {
            let e = parse_bytes("state.memory", bad).unwrap_err().to_string();
            assert!(e.contains("state.memory") && e.contains("not a size"), "{bad}: {e}");
        }
    }

    #[test]
    fn backends_are_named_as_flink_names_them_too() {
        assert_eq!(StateBackend::parse("f", "hashmap").unwrap(), StateBackend::Memory);
        assert!(matches!(
            StateBackend::parse("f", "rocksdb").unwrap(),
            StateBackend::Disk(_)
        ));
        let b = StateBackend::from_settings("disk", Some("/data"), Some("1g")).unwrap();
        assert_eq!(
            b,
            StateBackend::Disk(DiskSettings {
                dir: "/data".into(),
                memory: 1 << 30,
                local_recovery: true,
            })
        );
        let e = StateBackend::parse("state.backend", "ram").unwrap_err().to_string();
        assert!(e.contains("state.backend") && e.contains("`ram`"), "{e}");
    }
}
