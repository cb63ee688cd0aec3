//! Driving the `weir` binary in tests, and reproducible pseudo-random failure points.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The next value of a xorshift64 sequence (reproducible "random" points for failure tests).
pub fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// `weir run dir/name --progress=never [--resume]`, with `text` (a pipeline or a SQL script)
/// written to `dir/name` first.
pub fn weir_run(dir: &Path, name: &str, text: &str, resume: bool) -> Command {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("run").arg(&file).arg("--progress=never");
    if resume {
        cmd.arg("--resume");
    }
    cmd.stderr(std::process::Stdio::null());
    cmd
}

/// Runs the job in file `name` (resuming after the first attempt) and SIGKILLs it up to `kills`
/// times, each after `min_ms + random % spread_ms`, then lets the last run finish and asserts it
/// succeeded. Returns how many kills landed (a run that already ended is not killed).
pub fn kill_and_resume(
    dir: &Path,
    name: &str,
    text: &str,
    kills: usize,
    mut seed: u64,
    min_ms: u64,
    spread_ms: u64,
) -> usize {
    let mut landed = 0;
    for attempt in 0..20 {
        let mut child = weir_run(dir, name, text, attempt > 0).spawn().unwrap();
        let pause = min_ms + next_random(&mut seed) % spread_ms;
        if landed < kills {
            std::thread::sleep(Duration::from_millis(pause));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                landed += 1;
                continue;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "the resumed run failed: {status}");
        break;
    }
    landed
}
