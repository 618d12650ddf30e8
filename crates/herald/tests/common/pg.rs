//! A PostgreSQL server of a test's own, to stop and start under a running Herald: `initdb` and
//! `pg_ctl` from Debian's packages (`/usr/lib/postgresql/*/bin`), a temporary directory, a free
//! port on 127.0.0.1. Never the shared server other suites use. Run as the `postgres` user when
//! the test runs as root (initdb refuses root). Stopped and deleted when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private PostgreSQL server; see the module docs.
pub struct PrivatePg {
    bin: PathBuf,
    /// Holds `data/` and the socket directory; deleted on drop.
    dir: tempfile::TempDir,
    port: u16,
    /// `runuser -u postgres --` when running as root.
    as_user: Option<String>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`, if any.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

fn show(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl PrivatePg {
    /// Makes and starts a fresh server. `None` (with a notice) when PostgreSQL's server binaries
    /// are not installed — except under `CI=true`, where that is a failure.
    ///
    /// # Panics
    /// When the binaries are there but the server cannot be made or started.
    pub fn start() -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                !in_ci(),
                "CI=true but PostgreSQL's server binaries (initdb, pg_ctl) are not in \
                 /usr/lib/postgresql/*/bin: install the postgresql package"
            );
            eprintln!(
                "note: no initdb/pg_ctl in /usr/lib/postgresql/*/bin; skipping the tests that \
                 stop and start a PostgreSQL server of their own"
            );
            return None;
        };
        // `/proc/self` belongs to the process's effective user.
        let root = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").expect("stat /proc/self"),
        ) == 0;
        let as_user = root.then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .expect("a temporary directory for PostgreSQL");
        if let Some(user) = &as_user {
            let out = Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(dir.path())
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "cannot give {} to {user}: {}",
                dir.path().display(),
                show(&out)
            );
        }
        let pg = Self {
            bin,
            dir,
            port: free_port(),
            as_user,
        };
        let out = pg
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(pg.data())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", show(&out));
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command of PostgreSQL's `bin` directory, as the server's user.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match &self.as_user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the server's own database, which a test
    /// may use as Herald's (the whole server is the test's).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-o", &options])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\nserver log:\n{}",
            show(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server the way an operator's restart does: `pg_ctl stop -m fast` (every
    /// connection is cut, open transactions are rolled back), and waits until it is down.
    pub fn stop_server(&self) {
        let out = self
            .command("pg_ctl")
            .args(["stop", "-w", "-t", "60", "-m", "fast", "-D"])
            .arg(self.data())
            .output()
            .expect("run pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop failed: {}", show(&out));
    }

    /// A fast stop, then a start.
    pub fn restart(&self) {
        self.stop_server();
        self.start_server();
    }

    /// Whether something accepts connections on the server's port.
    pub fn is_listening(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// The server's log so far (to explain a failure).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The directory of the data, sockets and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // Immediate: the test is over, nothing needs to be kept.
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data())
            .output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.is_listening() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
