//! A TCP proxy on 127.0.0.1 in front of a server: it counts what it forwards (the independent
//! byte counter of the SSH tests) and can stop forwarding for a while, as a link that drops.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sshd::Sshd;

/// A proxy forwarding every connection made to [`CountingProxy::port`] to a target port.
pub struct CountingProxy {
    /// The port it listens on.
    pub port: u16,
    bytes: Arc<AtomicU64>,
    /// Directions of connections still open.
    open: Arc<AtomicU64>,
    /// Connections accepted so far.
    connections: Arc<AtomicU64>,
    /// While set, nothing is forwarded and new connections are closed at once.
    paused: Arc<AtomicBool>,
}

impl CountingProxy {
    /// A proxy to `127.0.0.1:target`.
    pub fn start(target: u16) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = CountingProxy {
            port,
            bytes: Arc::new(AtomicU64::new(0)),
            open: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
            paused: Arc::new(AtomicBool::new(false)),
        };
        let (counter, pumps, connections, paused) = (
            Arc::clone(&proxy.bytes),
            Arc::clone(&proxy.open),
            Arc::clone(&proxy.connections),
            Arc::clone(&proxy.paused),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if paused.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let counter = Arc::clone(&counter);
                    let pumps = Arc::clone(&pumps);
                    let paused = Arc::clone(&paused);
                    pumps.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = from.read(&mut buf) {
                            while paused.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        let _ = to.shutdown(Shutdown::Write);
                        pumps.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        proxy
    }

    /// A proxy in front of `sshd`, with the `nas` alias of its client home pointed at it.
    pub fn in_front_of(sshd: &Sshd) -> CountingProxy {
        let proxy = CountingProxy::start(sshd.port());
        let config = sshd.home().join(".ssh/config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace(
                &format!("Port {}", sshd.port()),
                &format!("Port {}", proxy.port),
            ),
        )
        .unwrap();
        let line = sshd.known_hosts_line().replace(
            &format!("[127.0.0.1]:{}", sshd.port()),
            &format!("[127.0.0.1]:{}", proxy.port),
        );
        std::fs::write(sshd.home().join(".ssh/known_hosts"), format!("{line}\n")).unwrap();
        proxy
    }

    /// Bytes forwarded since the last call, once every connection through the proxy has
    /// closed (the client that made them has exited).
    pub fn take(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "connections through the proxy still open after 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.bytes.swap(0, Ordering::SeqCst)
    }

    /// Bytes forwarded so far (not reset), without waiting.
    pub fn forwarded(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// TCP connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops forwarding (open connections stall, new ones are closed at once) until
    /// [`CountingProxy::resume`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding for `outage`, from a thread of its own, and returns at once.
    pub fn drop_for(&self, outage: Duration) {
        let paused = Arc::clone(&self.paused);
        paused.store(true, Ordering::SeqCst);
        std::thread::spawn(move || {
            std::thread::sleep(outage);
            paused.store(false, Ordering::SeqCst);
        });
    }
}
