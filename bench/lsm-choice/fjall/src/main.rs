//! fjall as a keyed-state store: read-modify-write of N distinct keys (see ../run.sh).
use std::time::Instant;

fn io_written() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    s.lines().find(|l| l.starts_with("write_bytes:")).unwrap()[12..].trim().parse().unwrap()
}

fn main() -> fjall::Result<()> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10_000_000);
    let ops: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(20_000_000);
    let dir = std::env::var("DIR").unwrap_or("/tmp/fjallbench".into());
    let _ = std::fs::remove_dir_all(&dir);
    let db = fjall::Database::builder(&dir)
        .cache_size(256 << 20)
        .manual_journal_persist(true)
        .temporary(true)
        .open()?;
    let ks = db.keyspace("state", || fjall::KeyspaceCreateOptions::default().manual_journal_persist(true))?;
    let w0 = io_written();
    let t = Instant::now();
    let mut logical = 0u64;
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut batch = db.batch().durability(None);
    for i in 0..ops {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        let k = x % n;
        let group = (k % 128) as u16;
        let mut key = [0u8; 18];
        key[..2].copy_from_slice(&group.to_be_bytes());
        key[2..10].copy_from_slice(&k.to_be_bytes());
        key[10..].copy_from_slice(&(k ^ 0xffff).to_be_bytes());
        let old = ks.get(key)?;
        let count = old.map(|v| u64::from_le_bytes(v[..8].try_into().unwrap())).unwrap_or(0) + 1;
        let mut value = [0u8; 24];
        value[..8].copy_from_slice(&count.to_le_bytes());
        batch.insert(&ks, key.to_vec(), value.to_vec());
        logical += 42;
        if batch.len() >= 4096 {
            batch.commit()?;
            batch = db.batch().durability(None);
        }
        if i % 5_000_000 == 0 && i > 0 {
            eprintln!("{i} ops, {:.2} s", t.elapsed().as_secs_f64());
        }
    }
    batch.commit()?;
    let secs = t.elapsed().as_secs_f64();
    let w = io_written() - w0;
    println!(
        "keys {n} ops {ops}: {:.0} ops/s, written {} MB for {} MB logical (write amp {:.1}), disk {} MB",
        ops as f64 / secs,
        w >> 20,
        logical >> 20,
        w as f64 / logical as f64,
        db.disk_space()? >> 20
    );
    Ok(())
}
