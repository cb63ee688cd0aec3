//! This process's resident memory and CPU time, read from `/proc/self` (Linux), for the
//! workers' page of the REST API and dashboard. Elsewhere the figures are absent, not zero.

/// Resident memory and CPU time of this process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessUsage {
    /// Resident set size, bytes (`VmRSS`).
    pub rss_bytes: u64,
    /// User and system CPU time since the process started, ms.
    pub cpu_ms: u64,
    /// When it was read, ms since the epoch.
    pub at_ms: i64,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// Reads this process's usage now (none where `/proc` does not have it).
pub fn read() -> Option<ProcessUsage> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    Some(ProcessUsage {
        rss_bytes: rss_kib(&status)? * 1024,
        cpu_ms: cpu_ticks(&stat)? * 1000 / USER_HZ,
        at_ms: crate::contract::clock::wall_ms(),
    })
}

/// `VmRSS` of a `/proc/<pid>/status` text, KiB.
fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `utime + stime` of a `/proc/<pid>/stat` line, clock ticks. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (weir (worker) 1) S 1 4242 4242 0 -1 4194560 3313 0 0 0 250 75 0 0 20 0 9 0 \
                    1234 123456789 4321 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        let status = "Name:\tweir\nVmHWM:\t  9000 kB\nVmRSS:\t   5120 kB\nThreads:\t9\n";
        assert_eq!(rss_kib(status), Some(5120));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_memory_and_its_cpu_time_grows() {
        let before = read().expect("/proc on Linux");
        assert!(before.rss_bytes > 1 << 20, "{before:?}");
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
        while std::time::Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        assert!(read().unwrap().cpu_ms >= before.cpu_ms);
    }
}
