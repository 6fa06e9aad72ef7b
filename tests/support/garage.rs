//! A real three-node Garage cluster on 127.0.0.1 for tests of a store several sites share.
//!
//! `Garage::start` writes one `garage.toml` per node (LMDB metadata, replication factor 3,
//! `consistency_mode = "consistent"`, one shared RPC secret), starts `garage server` for each,
//! connects them, gives each 1 GB in zone `dc1`, applies the layout, creates a bucket and imports
//! a fixed key that may read and write it. Clients talk to node 0's S3 endpoint with path-style
//! URLs and region `garage`. The binary is `MUSICFS_TEST_GARAGE`, else the one
//! `scripts/test.sh` builds and caches (crates.io `garage` 2.5); a missing binary fails the test,
//! naming how to get it. Each node runs under `setpriv --pdeathsig KILL`, so a test that dies
//! without dropping its cluster leaves no server behind.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};

use super::sshd::free_port;

/// The key every test cluster imports: an access key id (`GK` and 24 hex digits) and its
/// 64-hex secret.
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// The secret of [`KEY_ID`].
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The region Garage answers to.
pub const REGION: &str = "garage";

/// One node: its directory, ports and process.
struct Node {
    config: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    child: Option<Child>,
}

/// A running cluster; every node is stopped on drop.
pub struct Garage {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    bucket: String,
}

/// Where the garage binary is: `MUSICFS_TEST_GARAGE`, else the cache `scripts/test.sh` fills.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MUSICFS_TEST_GARAGE") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache.join("musicfs-test/garage/bin/garage")
}

impl Garage {
    /// Starts three nodes and a bucket named `bucket`.
    pub fn start(bucket: &str) -> Garage {
        let garage = binary();
        assert!(
            garage.is_file(),
            "no garage binary at {}: scripts/test.sh builds it (cargo install --debug garage \
             --version 2.5.0 --locked --no-default-features --features bundled-libs,lmdb \
             --root DIR), or set MUSICFS_TEST_GARAGE to one",
            garage.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("musicfs-garage-")
            .tempdir()
            .expect("temp dir");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let home = dir.path().join(format!("node{i}"));
            fs::create_dir_all(&home).expect("node dir");
            let (s3_port, rpc_port) = (free_port(), free_port());
            let config = home.join("garage.toml");
            fs::write(
                &config,
                format!(
                    "metadata_dir = \"{home}/meta\"\n\
                     data_dir = \"{home}/data\"\n\
                     db_engine = \"lmdb\"\n\
                     replication_factor = 3\n\
                     consistency_mode = \"consistent\"\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                     rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                     rpc_secret = \"{SECRET}\"\n\
                     [s3_api]\n\
                     api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                     s3_region = \"{REGION}\"\n",
                    home = home.display(),
                ),
            )
            .expect("garage.toml");
            nodes.push(Node {
                config,
                s3_port,
                rpc_port,
                child: None,
            });
        }
        let mut cluster = Garage {
            _dir: dir,
            nodes,
            bucket: bucket.to_string(),
        };
        for i in 0..3 {
            cluster.start_node(i);
        }
        // Every node knows the others, then the layout puts one replica on each.
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let out = cluster.cli(i, &["node", "id", "-q"]);
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect();
        for id in &ids[1..] {
            cluster.cli_retried(0, &["node", "connect", id]);
        }
        for id in &ids {
            let short = id.split('@').next().unwrap_or(id);
            cluster.cli_retried(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        cluster.cli_retried(0, &["layout", "apply", "--version", "1"]);
        cluster.cli_retried(0, &["bucket", "create", bucket]);
        cluster.cli_retried(
            0,
            &[
                "key",
                "import",
                "--yes",
                "-n",
                "musicfs-test",
                KEY_ID,
                SECRET,
            ],
        );
        cluster.cli_retried(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                bucket,
                "--key",
                "musicfs-test",
            ],
        );
        cluster
    }

    /// Node `i`'s S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// The bucket the cluster was started with.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The environment a client needs to reach node `i`: endpoint, region and key, and no
    /// shared AWS files or instance metadata to look at.
    pub fn env(&self, i: usize) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint(i)),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".into(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// The keys of the bucket under `prefix`, sorted, as node 0 lists them (an S3 client
    /// outside musicfs).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test's client");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint(0))
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "test"))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        runtime.block_on(async {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("list {}/{prefix}: {e:?}", self.bucket));
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(String::from)),
                );
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_string()),
                    None => break,
                }
            }
            keys.sort();
            keys
        })
    }

    /// Whether node `i` is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills node `i` (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (with its data) and waits for its ports.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = fs::File::create(node.config.with_file_name("garage.log")).expect("log");
        // Killed with the thread that started it, should the test die without dropping it.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL"])
            .arg(binary())
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start garage through setpriv (util-linux): {e}"));
        node.child = Some(child);
        for port in [node.rpc_port, node.s3_port] {
            wait_for_port(port, &node.config);
        }
    }

    /// Runs `garage -c <node i's config> ARGS`, which must succeed.
    fn cli(&self, i: usize, args: &[&str]) -> Output {
        let out = self.try_cli(i, args);
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn try_cli(&self, i: usize, args: &[&str]) -> Output {
        Command::new(binary())
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("cannot run garage: {e}"))
    }

    /// Runs a command that may fail while the cluster settles (nodes still connecting), for
    /// up to 30 s.
    fn cli_retried(&self, i: usize, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.try_cli(i, args);
            if out.status.success() || Instant::now() > deadline {
                return self.cli_checked(out, args);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn cli_checked(&self, out: Output, args: &[&str]) -> Output {
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Waits up to 20 s for `port` to accept connections; the node's log explains a failure.
fn wait_for_port(port: u16, config: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = fs::read_to_string(config.with_file_name("garage.log")).unwrap_or_default();
            panic!("garage did not listen on 127.0.0.1:{port} within 20 s: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
