//! moto's S3 server (PyPI `moto[server]` 5, installed in a venv by `scripts/test.sh`) on
//! 127.0.0.1, on a free port picked at run time, stopped by PID when dropped.
//!
//! The server is found through `MUSICFS_MOTO_SERVER`, then the venv test.sh makes
//! (`${XDG_CACHE_HOME:-~/.cache}/musicfs-test/moto-venv`), then `PATH`. A missing server fails
//! the test with a message naming the package, never skips it. Buckets and objects are made
//! through aws-sdk-s3 (the crate the transport uses, with the same settings an S3-compatible
//! server needs), so a test can also put keys the transport itself would refuse to write.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::primitives::ByteStream;

/// The access key every test client uses (moto accepts any).
pub const ACCESS_KEY: &str = "AKIAMUSICFSTEST";
/// Its secret.
pub const SECRET_KEY: &str = "moto-secret-key";

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// Where moto_server is, or a panic naming the package and how it is installed.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MUSICFS_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        let venv = cache.join("musicfs-test/moto-venv/bin/moto_server");
        if venv.is_file() {
            return venv;
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "moto_server not found: install the PyPI package moto[server] 5 \
             (bash scripts/test.sh does, in a venv), or set MUSICFS_MOTO_SERVER"
        )
    })
}

impl Moto {
    /// Starts a server and waits until it answers.
    pub fn start() -> Moto {
        Moto::spawn(false)
    }

    /// One server for the whole test process, started on first use and killed when the
    /// process ends (`setpriv --pdeathsig`, from a thread that lives as long as the process),
    /// with the AWS environment variables of this process pointing at it.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(Moto::spawn(true)).expect("send the server");
                loop {
                    std::thread::park();
                }
            });
            let moto = rx.recv().expect("the moto server");
            for (key, value) in moto.env() {
                std::env::set_var(key, value);
            }
            moto
        })
    }

    /// A server that checks signatures, as AWS does: the first four requests (the setup
    /// below, through boto3 from moto's own Python) make the bucket `bucket`, an IAM user
    /// allowed everything and its access key, returned as (key id, secret); every request
    /// after them must be signed with that key.
    pub fn start_with_auth(bucket: &str) -> (Moto, String, String) {
        const SETUP_REQUESTS: usize = 4;
        let moto = Moto::spawn_with(false, &[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
        let python = moto_server()
            .parent()
            .map(|dir| dir.join("python3"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("python3"));
        let script = format!(
            r#"
import boto3, json
kw = dict(endpoint_url="{endpoint}", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **kw).create_bucket(Bucket="{bucket}")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="musicfs")
iam.put_user_policy(UserName="musicfs", PolicyName="all", PolicyDocument=json.dumps(
    {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "*", "Resource": "*"}}]}}))
key = iam.create_access_key(UserName="musicfs")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
            endpoint = moto.endpoint(),
        );
        let out = Command::new(&python)
            .arg("-c")
            .arg(script)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
        assert!(
            out.status.success(),
            "moto's IAM setup ({SETUP_REQUESTS} requests) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        let (id, secret) = (words.next(), words.next());
        let (Some(id), Some(secret)) = (id, secret) else {
            panic!("no access key from moto's IAM: {text}")
        };
        (moto, id.to_string(), secret.to_string())
    }

    fn spawn(die_with_process: bool) -> Moto {
        Moto::spawn_with(die_with_process, &[])
    }

    fn spawn_with(die_with_process: bool, env: &[(&str, &str)]) -> Moto {
        let server = moto_server();
        let port = super::sshd::free_port();
        let dir = tempfile::tempdir().expect("moto's directory");
        let mut command = if die_with_process {
            let mut c = Command::new("setpriv");
            c.arg("--pdeathsig").arg("KILL").arg(&server);
            c
        } else {
            Command::new(&server)
        };
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto's log");
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (PyPI moto[server] 5, installed by scripts/test.sh)",
                    server.display()
                )
            });
        let mut moto = Moto {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status}: {}", moto.log());
            }
            assert!(Instant::now() < deadline, "moto did not answer in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// What the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("moto.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a musicfs process needs to reach the server: its endpoint, a test
    /// key, a region, and no shared AWS files or instance metadata to look at.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".into(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// A client of the server, outside musicfs.
    pub fn client(&self) -> S3 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test's client");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(config),
            runtime,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub last_modified: String,
}

/// A blocking client of the moto server, for making buckets and looking at what is there.
pub struct S3 {
    pub client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

impl S3 {
    pub fn create_bucket(&self, bucket: &str) {
        self.runtime
            .block_on(self.client.create_bucket().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    }

    /// Puts an object with the given user metadata.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8], metadata: &[(&str, &str)]) {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        for (k, v) in metadata {
            request = request.metadata(*k, *v);
        }
        self.runtime
            .block_on(request.send())
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// An object's bytes and user metadata.
    pub fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> (Vec<u8>, std::collections::HashMap<String, String>) {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            let metadata = out.metadata().cloned().unwrap_or_default();
            let body = out
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec();
            (body, metadata)
        })
    }

    /// Every object of the bucket, sorted by key.
    pub fn list(&self, bucket: &str) -> Vec<Listed> {
        self.runtime.block_on(async {
            let mut all = Vec::new();
            let mut token = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(bucket)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .expect("list");
                for o in page.contents() {
                    all.push(Listed {
                        key: o.key().unwrap_or_default().to_string(),
                        size: o.size().unwrap_or(0),
                        etag: o.e_tag().unwrap_or_default().to_string(),
                        last_modified: o.last_modified().map(|t| t.to_string()).unwrap_or_default(),
                    });
                }
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_string()),
                    None => break,
                }
            }
            all.sort_by(|a, b| a.key.cmp(&b.key));
            all
        })
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        self.runtime.block_on(async {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .send()
                .await
                .expect("list multipart uploads");
            out.uploads().len()
        })
    }
}
