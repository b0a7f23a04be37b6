//! The processes under test: started as children, measured through `/proc` (CPU time of the whole
//! process tree, resident memory), and stopped when dropped, so a failed run leaves nothing behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A started process (and, through `/proc`, its children: nginx forks its worker).
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Proc> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its descendants.
    pub fn tree(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        let mut i = 0;
        while i < pids.len() {
            let parent = pids[i];
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for entry in dir.flatten() {
                    let Some(pid) = entry
                        .file_name()
                        .to_str()
                        .and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if stat_fields(pid).is_some_and(|f| f.ppid == parent) && !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
            }
            i += 1;
        }
        pids
    }

    /// CPU time (user + system) used so far by the process tree.
    pub fn cpu(&self) -> Duration {
        let ticks: u64 = self
            .tree()
            .into_iter()
            .filter_map(stat_fields)
            .map(|f| f.utime + f.stime)
            .sum();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
    }

    /// Resident memory of the process tree now and at its peak, in MiB.
    pub fn memory(&self) -> Memory {
        let mut m = Memory::default();
        for pid in self.tree() {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            for line in status.lines() {
                let kib = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                        / 1024.0
                };
                if line.starts_with("VmRSS:") {
                    m.rss_mib += kib(line);
                } else if line.starts_with("VmHWM:") {
                    m.peak_mib += kib(line);
                }
            }
        }
        m
    }

    /// Fails if the process has exited (it should be serving).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first (switchyard drains, nginx's master stops its worker), then SIGKILL.
        let _ = Command::new("kill")
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory, MiB.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

struct StatFields {
    ppid: u32,
    utime: u64,
    stime: u64,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the rest follows its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(StatFields {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Waits until `url` answers with any HTTP status; returns how long that took.
pub async fn wait_until_up(url: &str, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let client = crate::load::plain_client();
    loop {
        let request = http::Request::get(url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("static request");
        if client.request(request).await.is_ok() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("{url} did not come up within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
