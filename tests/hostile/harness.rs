//! Runs romkit on one hostile input, bounded, and checks what it left.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Address space allowed to one romkit run.
const MEMORY_LIMIT: u64 = 2 << 30;
/// Wall time allowed to one romkit run.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A would-be escape target of absolute entries (`/etc/x`).
pub const ABSOLUTE_TARGET: &str = "/etc/x";

/// One hostile input in its own folder:
/// `ROOT/sentinel`, `ROOT/in/NAME` (the input), `ROOT/work` (the current
/// folder of every run) and `ROOT/work/out` (the output folder).
pub struct Case {
    _dir: tempfile::TempDir,
    pub name: String,
    pub root: PathBuf,
    pub input: PathBuf,
    pub work: PathBuf,
    pub out: PathBuf,
    before: Vec<String>,
}

/// What one run gave.
#[derive(Debug)]
pub struct Outcome {
    pub command: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// What a command must do with the input.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Exit with one of these codes and name `needle` (stderr, or stdout
    /// for `verify`'s report).
    Fail(&'static [i32], &'static str),
    /// The input is odd but safely handled: exit 0.
    Ok,
    /// Safely handled with a warning (exit 0) naming `needle` on stderr.
    Warned(&'static str),
}

/// Exit 3: the input is invalid.
pub const INVALID: &[i32] = &[3];
/// Exit 1: a hash or checksum does not match.
pub const CHECK: &[i32] = &[1];

impl Case {
    /// Writes `bytes` as `ROOT/in/file_name`.
    pub fn new(name: &str, file_name: &str, bytes: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("sentinel"), b"sentinel").unwrap();
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(root.join("work")).unwrap();
        let input = root.join("in").join(file_name);
        std::fs::write(&input, bytes).unwrap();
        let before = crate::common::listing(&root);
        Case {
            _dir: dir,
            name: name.to_string(),
            work: root.join("work"),
            out: root.join("work/out"),
            input,
            root,
            before,
        }
    }

    /// Runs romkit with `args`, where `IN` is the input and `OUT` the output
    /// folder, bounded in memory and time.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let bin = assert_cmd::cargo::cargo_bin("romkit");
        let mut cmd = std::process::Command::new(bin);
        cmd.current_dir(&self.work)
            .env_remove("ROMKIT_LOG")
            .env("SOURCE_DATE_EPOCH", "1705300800");
        for a in args {
            match *a {
                "IN" => cmd.arg(&self.input),
                "OUT" => cmd.arg(&self.out),
                "OUT/x.zip" => cmd.arg(self.out.join("x.zip")),
                other => cmd.arg(other),
            };
        }
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: MEMORY_LIMIT,
                    rlim_max: MEMORY_LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let out = assert_cmd::Command::from_std(cmd)
            .timeout(TIME_LIMIT)
            .output()
            .unwrap_or_else(|e| panic!("{}: romkit {args:?}: {e}", self.name));
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            command: args.join(" "),
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// Runs `args` and checks the outcome against `expect`, then that
    /// nothing escaped the output folder and, on failure, that the output
    /// folder holds no file. Prints one report line.
    pub fn check(&self, args: &[&str], expect: Expect) -> Outcome {
        let o = self.run(args);
        let first_line = o
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        eprintln!(
            "CASE {:<34} romkit {:<52} exit {:?}{} {:.2}s | {}",
            self.name,
            o.command,
            o.code,
            o.signal.map(|s| format!(" signal {s}")).unwrap_or_default(),
            o.elapsed.as_secs_f64(),
            first_line
        );
        let ctx = || {
            format!(
                "{}: romkit {}\nexit {:?} signal {:?}\nstdout:\n{}\nstderr:\n{}",
                self.name, o.command, o.code, o.signal, o.stdout, o.stderr
            )
        };
        assert!(
            o.signal.is_none(),
            "killed by a signal (memory or time limit): {}",
            ctx()
        );
        assert!(o.elapsed < TIME_LIMIT, "took too long: {}", ctx());
        assert_ne!(o.code, Some(101), "panicked: {}", ctx());
        assert!(!o.stderr.contains("panicked"), "panicked: {}", ctx());
        match expect {
            Expect::Ok => assert_eq!(o.code, Some(0), "expected success: {}", ctx()),
            Expect::Warned(needle) => {
                assert_eq!(o.code, Some(0), "expected success: {}", ctx());
                assert!(
                    o.stderr.contains(needle),
                    "a warning should name {needle:?}: {}",
                    ctx()
                );
            }
            Expect::Fail(codes, needle) => {
                assert!(
                    o.code.is_some_and(|c| codes.contains(&c)),
                    "expected exit {codes:?}: {}",
                    ctx()
                );
                let said = if args.first() == Some(&"verify") {
                    format!("{}{}", o.stdout, o.stderr)
                } else {
                    o.stderr.clone()
                };
                assert!(
                    said.contains(needle),
                    "message should name {needle:?}: {}",
                    ctx()
                );
                // `unpack --files` writes the partition images first; a file
                // tree that cannot be extracted removes them again.
                let left: Vec<String> = crate::common::listing(&self.out);
                assert!(
                    left.is_empty(),
                    "left behind in the output folder {left:?}: {}",
                    ctx()
                );
            }
        }
        self.assert_contained(&ctx());
        o
    }

    /// Nothing appeared outside `ROOT/work/out`, and the would-be escape
    /// targets do not exist.
    fn assert_contained(&self, ctx: &str) {
        let now: Vec<String> = crate::common::listing(&self.root)
            .into_iter()
            .filter(|p| !p.starts_with("work/out/"))
            .collect();
        assert_eq!(
            now, self.before,
            "files appeared outside the output folder: {ctx}"
        );
        for p in [
            self.work.join("x"),
            self.root.join("x"),
            PathBuf::from(ABSOLUTE_TARGET),
        ] {
            assert!(!p.exists(), "{} was written: {ctx}", p.display());
        }
        // An empty output folder is allowed; cleaned for the next command.
        let _ = std::fs::remove_dir_all(&self.out);
    }

    /// The commands a user runs on a package, with the same expectation
    /// for each.
    pub fn check_package(&self, expect: Expect) {
        for args in package_commands() {
            self.check(&args, expect);
        }
    }
}

/// inspect, verify, unpack (images and files), ls, apps, build.
pub fn package_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["inspect", "IN"],
        vec!["verify", "IN"],
        vec!["unpack", "IN", "-o", "OUT"],
        vec!["unpack", "--files", "IN", "-o", "OUT"],
        vec!["ls", "IN"],
        vec!["apps", "IN"],
        vec!["build", "--profile", PROFILE, "-o", "OUT/x.zip", "IN"],
    ]
}

/// The debloat profile builds use.
pub const PROFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/minimal.yaml");
