//! Running the real `herald` binary from a test: commands, a served instance, stopping it.
#![allow(dead_code)] // each suite uses a part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `herald` in `dir` on the database `db`, logging warnings only.
pub fn herald(dir: &Path, db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir)
        .env("HERALD_DATABASE_URL", db)
        .env("RUST_LOG", "warn");
    cmd
}

/// A running `herald serve`; killed if the test fails before it stops it.
pub struct Herald(Option<Child>);

impl Herald {
    fn take(mut self) -> Child {
        self.0.take().expect("running")
    }

    fn signal(child: &Child, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal herald");
    }

    /// SIGTERM; it must exit successfully within 10 s.
    pub fn stop(self) {
        let mut child = self.take();
        Self::signal(&child, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "herald exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "herald did not stop within 10s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: dies on the spot, mid-whatever it was doing.
    pub fn kill9(self) {
        let mut child = self.take();
        Self::signal(&child, nix::sys::signal::Signal::SIGKILL);
        child.wait().expect("reap");
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `herald serve` on a free port; the running instance and its base URL. Its log lines
/// with errors or panics are echoed to the test's output.
pub fn serve(dir: &Path, db: &str) -> (Herald, String) {
    let (herald, base, _) = serve_with(dir, db, &[]);
    (herald, base)
}

/// [`serve`] with more arguments; with `--smtp-bind`, also the address of the SMTP listener.
pub fn serve_with(dir: &Path, db: &str, args: &[&str]) -> (Herald, String, Option<String>) {
    let mut child = herald(dir, db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let wants_smtp = args.contains(&"--smtp-bind");
    let (mut base, mut smtp) = (None, None);
    while base.is_none() || (wants_smtp && smtp.is_none()) {
        let line = lines
            .next()
            .expect("herald serve exited before listening")
            .expect("read stderr");
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.split("over SMTP on ").nth(1) {
            smtp = Some(rest.trim().to_string());
        }
    }
    let base = base.unwrap();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("herald: {line}");
            }
        }
    });
    (Herald(Some(child)), base, smtp)
}
