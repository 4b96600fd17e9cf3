//! Commands run by tests: the `twine-heatmap` binary from a scrubbed environment, any command
//! run to its exit within a bound, and `serve` as a child process on a free loopback port.

use super::TestServer;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_twine-heatmap");

/// How long a command may run before its test fails: ample for a debug build's largest import
/// on a busy machine, and a `serve` that should have refused to start fails its test rather
/// than hanging the run.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How long `serve` may take to answer `/health`.
const START_LIMIT: Duration = Duration::from_secs(30);

/// `twine-heatmap ARGS...` with none of the settings the environment may hold for it, so that
/// what it does follows from its arguments and what the test adds: no `TWINE_*` variable
/// (each is a flag's default), no `DATABASE_URL` (scripts/test.sh exports it for the PostGIS
/// tests; a `serve` given it would wait for database layers), no `RUST_LOG` (tests of the log
/// expect each command's default level) and no `NO_COLOR` (tests that logs hold no escape
/// codes test that a pipe is not taken for a terminal).
pub fn twine(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TWINE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// What a command did, once it exited.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub command: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// (whether it succeeded, its stderr): what tests of a command's messages look at.
    pub fn verdict(self) -> (bool, String) {
        (self.success(), self.stderr)
    }

    /// Fails the test with the command's output unless it succeeded; returns its stdout.
    pub fn expect_success(self) -> String {
        assert!(self.success(), "{} failed: {}", self.command, self.report());
        self.stdout
    }

    /// Fails the test with the command's output if it succeeded; returns its stderr.
    pub fn expect_failure(self) -> String {
        assert!(
            !self.success(),
            "{} succeeded: {}",
            self.command,
            self.report()
        );
        self.stderr
    }

    fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to its exit, stdin closed and its output captured; fails the test when it runs
/// past [`RUN_LIMIT`].
pub fn run(cmd: &mut Command) -> Outcome {
    run_within(cmd, RUN_LIMIT)
}

/// [`run`], failing the test when `cmd` runs past `limit` (for a command expected to stop
/// at once, such as a server that must refuse to start).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Outcome {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    // Read both pipes while it runs: a command that fills one would otherwise never exit.
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command} still running after {} s; its log:\n{}",
                limit.as_secs(),
                collect(stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
        command,
    }
}

/// Sends signal `sig` (`INT`, `TERM`, ...) to `child`.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {sig}: {status}");
}

/// A loopback port that was free a moment ago, for servers started as processes.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `twine-heatmap serve` as a child process on 127.0.0.1, stopped when dropped. Requests go
/// through the [`TestServer`] it dereferences to. Its stderr, the log, is read as it comes
/// (a log nobody reads would fill the pipe and stall the server) and kept for [`stop`].
///
/// [`stop`]: ServeProcess::stop
pub struct ServeProcess {
    server: TestServer,
    child: Child,
    log: Option<JoinHandle<String>>,
}

impl ServeProcess {
    /// `serve --bind 127.0.0.1:PORT ARGS...` from [`twine`] on a free port, once its
    /// `/health` answers.
    pub fn start(args: &[&str]) -> ServeProcess {
        ServeProcess::start_env(args, &[])
    }

    /// [`start`](Self::start) with environment variables `env` set.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        ServeProcess::start_at(&format!("127.0.0.1:{}", free_port()), args, env)
    }

    /// [`start_env`](Self::start_env) on the address `bind` (to restart a server where a
    /// proxy expects it).
    pub fn start_at(bind: &str, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        let mut cmd = twine(&["serve", "--bind", bind]);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let command = describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        let log = Some(drain(child.stderr.take()));
        let mut process = ServeProcess {
            server: TestServer {
                base: format!("http://{bind}"),
            },
            child,
            log,
        };
        let health = format!("{}/health", process.server.base);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            // Any HTTP answer means it is up; what /health says is for the test to check.
            match ureq::get(&health).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => return process,
                Err(_) => {}
            }
            if let Some(status) = process.child.try_wait().expect("wait") {
                panic!(
                    "{command} exited ({status}) before it answered:\n{}",
                    process.stop()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{command} did not answer within {} s:\n{}",
                    START_LIMIT.as_secs(),
                    process.stop()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `sig` and waits (at most 15 s) for the server to exit.
    pub fn signal(&mut self, sig: &str) -> ExitStatus {
        signal(&self.child, sig);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop after {sig}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL) if it still runs; returns all it wrote to stderr.
    pub fn stop(mut self) -> String {
        self.kill();
        self.log.take().map(collect).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::ops::Deref for ServeProcess {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The program and its arguments, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn collect(reader: JoinHandle<String>) -> String {
    reader.join().unwrap_or_default()
}
