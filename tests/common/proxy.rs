//! A TCP proxy a test can cut and restore: the network between EventFlow and a service it
//! depends on, for outages of a service the test must not stop for everyone (the shared
//! PostgreSQL).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Forwards connections from a local port to `upstream` while up.
pub struct Proxy {
    /// The local port clients connect to.
    pub port: u16,
    upstream: SocketAddr,
    /// The accept loop and every forwarded connection, all dropped by `cut`.
    tasks: Option<JoinSet<()>>,
}

impl Proxy {
    /// Starts forwarding a free local port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let mut proxy = Self {
            port: super::services::free_port(),
            upstream,
            tasks: None,
        };
        proxy.restore().await;
        proxy
    }

    /// Closes the port and every open connection: the service looks down.
    pub fn cut(&mut self) {
        self.tasks = None;
    }

    /// Listens on the same port again.
    pub async fn restore(&mut self) {
        self.cut();
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the proxy port is free again");
        let upstream = self.upstream;
        let mut tasks = JoinSet::new();
        let (spawn, mut connections) = tokio::sync::mpsc::unbounded_channel::<TcpStream>();
        tasks.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if spawn.send(client).is_err() {
                    return;
                }
            }
        });
        // Connections live in the same set, so dropping it closes them all.
        let mut forwarders = JoinSet::new();
        tasks.spawn(async move {
            while let Some(mut client) = connections.recv().await {
                forwarders.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        tokio::io::copy_bidirectional(&mut client, &mut server)
                            .await
                            .ok();
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }
}
