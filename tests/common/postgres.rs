//! A real PostgreSQL server for the tests of one test binary: initdb into a temp dir, postgres
//! on a free loopback port, one fresh database per test. Root may not run PostgreSQL, so as
//! root the server runs as the `postgres` user that Debian's package creates.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Server {
    port: u16,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A URL to a new, empty database on the shared test server.
pub async fn fresh_database() -> String {
    let server = match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(e) => panic!("cannot start the test PostgreSQL server: {e}"),
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let mut conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to the test PostgreSQL server")
    };
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

fn start() -> Result<Server, String> {
    let root = std::env::temp_dir().join(format!("voxbridge-pg-{}", std::process::id()));
    remove_stale_servers();
    let data = root.join("data");
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let account = if unsafe { libc::geteuid() } == 0 {
        Some(postgres_account()?)
    } else {
        None
    };
    if let Some((uid, gid)) = account {
        chown(&root, uid, gid)?;
    }
    let status = as_account(Command::new(bin("initdb")?), account)
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("run initdb: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let port = free_port()?;
    let mut postgres = as_account(Command::new(bin("postgres")?), account);
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&root)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=300",
            "-c",
            "fsync=off",
        ])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    unsafe {
        // Fast shutdown when the test process ends, however it ends.
        postgres.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The death signal follows the spawning *thread*, so spawn from one that lives as long as
    // the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || match postgres.spawn() {
        Ok(mut child) => {
            let _ = tx.send(Ok(()));
            let _ = child.wait();
            std::thread::park();
        }
        Err(e) => {
            let _ = tx.send(Err(format!("start postgres: {e}")));
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    wait_ready(port)?;
    Ok(Server { port })
}

fn wait_ready(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let isready = bin("pg_isready")?;
    while Instant::now() < deadline {
        let ok = Command::new(&isready)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-q",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "postgres on port {port} did not become ready in 30 s"
    ))
}

/// Runs the command as `account` (uid, gid) when set: the setuid must precede exec.
fn as_account(mut cmd: Command, account: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = account {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn postgres_account() -> Result<(u32, u32), String> {
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root and there is no `postgres` user (apt-get install postgresql)".into(),
        );
    }
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Debian keeps the server binaries under /usr/lib/postgresql/<version>/bin; take the newest.
fn bin(name: &str) -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (apt-get install postgresql)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let path = e.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("no {name} under /usr/lib/postgresql/*/bin"))
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Data directories of test processes that are gone (killed before they could clean up).
fn remove_stale_servers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("voxbridge-pg-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Makes this test process's PostgreSQL server stop answering for `pause` (SIGSTOP to the
/// postmaster and every backend, then SIGCONT), as a database host that hangs or a network
/// that drops it would: connections stay open, queries and new connections wait.
pub fn freeze_for(pause: Duration) {
    let data = std::env::temp_dir()
        .join(format!("voxbridge-pg-{}", std::process::id()))
        .join("data");
    let pidfile = std::fs::read_to_string(data.join("postmaster.pid")).expect("a running server");
    let postmaster: i32 = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the postmaster's pid");
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: the ppid follows the closing parenthesis.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    for pid in &pids {
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    std::thread::sleep(pause);
    for pid in &pids {
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }
}
