//! The fjall micro benchmark's twin on RocksDB: read-modify-write of N distinct keys.
use std::time::Instant;

fn io_written() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    s.lines().find(|l| l.starts_with("write_bytes:")).unwrap()[12..].trim().parse().unwrap()
}

fn main() {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10_000_000);
    let ops: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(20_000_000);
    let dir = std::env::var("DIR").unwrap_or("/tmp/rocksbench".into());
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut block = rocksdb::BlockBasedOptions::default();
    block.set_block_cache(&rocksdb::Cache::new_lru_cache(256 << 20));
    block.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&block);
    let db = rocksdb::DB::open(&opts, &dir).unwrap();
    let mut wo = rocksdb::WriteOptions::default();
    wo.disable_wal(true);
    let w0 = io_written();
    let t = Instant::now();
    let mut logical = 0u64;
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut batch = rocksdb::WriteBatch::default();
    for i in 0..ops {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        let k = x % n;
        let group = (k % 128) as u16;
        let mut key = [0u8; 18];
        key[..2].copy_from_slice(&group.to_be_bytes());
        key[2..10].copy_from_slice(&k.to_be_bytes());
        key[10..].copy_from_slice(&(k ^ 0xffff).to_be_bytes());
        let old = db.get_pinned(key).unwrap();
        let count = old.map(|v| u64::from_le_bytes(v[..8].try_into().unwrap())).unwrap_or(0) + 1;
        let mut value = [0u8; 24];
        value[..8].copy_from_slice(&count.to_le_bytes());
        batch.put(key, value);
        logical += 42;
        if batch.len() >= 4096 {
            db.write_opt(std::mem::take(&mut batch), &wo).unwrap();
        }
        if i % 5_000_000 == 0 && i > 0 {
            eprintln!("{i} ops, {:.2} s", t.elapsed().as_secs_f64());
        }
    }
    db.write_opt(batch, &wo).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let w = io_written() - w0;
    let size: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    println!(
        "keys {n} ops {ops}: {:.0} ops/s, written {} MB for {} MB logical (write amp {:.1}), disk {} MB",
        ops as f64 / secs,
        w >> 20,
        logical >> 20,
        w as f64 / logical as f64,
        size >> 20
    );
}
