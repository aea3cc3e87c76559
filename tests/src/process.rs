//! Running child processes for tests: output captured to files, bounded waits, no orphans.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often a bounded wait checks whether a child has exited.
const POLL_INTERVAL_MS: u64 = 20;

/// How much of a captured log an error message quotes.
pub const LOG_TAIL_BYTES: u64 = 6 * 1024;

/// Spawns `cmd` with stdout and stderr appended to the given files.
///
/// The child gets SIGKILL when the thread that spawned it ends (`PR_SET_PDEATHSIG`), so a test
/// that is killed or panics past every `Drop` still leaves no broker or client running.
pub fn spawn_logged(cmd: &mut Command, stdout: &Path, stderr: &Path) -> Result<Child> {
    let out = append(stdout)?;
    let err = append(stderr)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: the closure runs in the forked child before exec and calls only prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", describe(cmd)))
}

fn append(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// Arguments longer than this are shortened in messages (a Java classpath runs to kilobytes).
const ARG_CHARS_SHOWN_MAX: usize = 120;

/// The command line, for messages, with very long arguments shortened.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        s.push(' ');
        if arg.chars().count() > ARG_CHARS_SHOWN_MAX {
            s.extend(arg.chars().take(ARG_CHARS_SHOWN_MAX));
            s.push('…');
        } else {
            s.push_str(&arg);
        }
    }
    s
}

/// The last non-empty line of a log file, shortened, for one-line summaries.
fn last_line(path: &Path) -> String {
    let text = tail(path, 2048);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.trim().chars().take(300).collect()
}

/// Waits for `child` to exit for at most `timeout`; `None` if it is still running then.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Sends `signal` to the child (ignoring "no such process": it has already exited).
pub fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped) and a valid signal.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// SIGSTOPs `child` and returns once the kernel reports it stopped ('T' in /proc/PID/stat, at
/// most 2 s), so that nothing a test does next can race the stop.
pub fn freeze(child: &Child) {
    signal(child, libc::SIGSTOP);
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let stopped = std::fs::read_to_string(&stat).is_ok_and(|text| {
            text.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        });
        if stopped {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The last `max` bytes of a log file, or a note saying why there is none.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&buf);
    if start > 0 {
        format!("[... {start} bytes before]\n{text}")
    } else {
        text.into_owned()
    }
}

/// A finished command's captured output.
#[derive(Debug, Clone)]
pub struct Output {
    /// File holding the command's stdout.
    pub stdout: PathBuf,
    /// File holding the command's stderr.
    pub stderr: PathBuf,
}

impl Output {
    /// The whole of stdout as text.
    pub fn stdout_text(&self) -> Result<String> {
        std::fs::read_to_string(&self.stdout)
            .with_context(|| format!("cannot read {}", self.stdout.display()))
    }
}

/// Runs `cmd` to completion within `timeout`, output captured as `<dir>/<name>.stdout|.stderr`.
/// A non-zero exit or a timeout is an error that quotes the command and the end of its output.
pub fn run(cmd: &mut Command, dir: &Path, name: &str, timeout: Duration) -> Result<Output> {
    let output = Output {
        stdout: dir.join(format!("{name}.stdout")),
        stderr: dir.join(format!("{name}.stderr")),
    };
    // A rerun of the same step starts with fresh logs.
    let _ = std::fs::remove_file(&output.stdout);
    let _ = std::fs::remove_file(&output.stderr);
    let started = Instant::now();
    let mut child = spawn_logged(cmd, &output.stdout, &output.stderr)?;
    let status = wait_timeout(&mut child, timeout)?;
    let failure = match status {
        Some(s) if s.success() => return Ok(output),
        Some(s) => format!("exited with {s}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            format!("did not finish within {timeout:?}")
        }
    };
    // The first line is a summary (it becomes the compatibility table's detail); the command
    // and the ends of its output follow.
    bail!(
        "{name} {failure} after {:.1?}: {}\ncommand: {}\n--- stderr ({}) ---\n{}\n--- stdout ({}) ---\n{}",
        started.elapsed(),
        last_line(&output.stderr),
        describe(cmd),
        output.stderr.display(),
        tail(&output.stderr, LOG_TAIL_BYTES),
        output.stdout.display(),
        tail(&output.stdout, LOG_TAIL_BYTES / 4),
    )
}
