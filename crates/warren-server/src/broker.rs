//! The broker: its vhosts and users, the listener that accepts connections, and shutdown.

use crate::admin;
use crate::config::Config;
use crate::connection;
use crate::durability::Durability;
use crate::resources::{self, Alarms};
use crate::tls::Tls;
use crate::vhost::VHost;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};
use warren_core::queue::{ConsumerId, SessionId};

/// How long shutdown waits for connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Broker {
    pub config: Config,
    vhosts: HashMap<String, Arc<VHost>>,
    next_connection_id: AtomicU64,
    next_consumer_id: AtomicU64,
    next_session_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    alarms: watch::Receiver<Alarms>,
    /// Live connections and message counters (see `stats`).
    pub registry: Arc<crate::stats::Registry>,
    tls: Option<Arc<Tls>>,
}

impl Broker {
    /// The current resource alarms; connections watch it to block publishers.
    pub fn alarms(&self) -> watch::Receiver<Alarms> {
        self.alarms.clone()
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.get(name).cloned()
    }

    /// Every vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<Arc<VHost>> = self.vhosts.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a user's password. `guest`, as in RabbitMQ, may only log in from loopback.
    pub fn authenticate(&self, user: &str, password: &str, peer: SocketAddr) -> bool {
        if user == "guest" && !peer.ip().to_canonical().is_loopback() {
            return false;
        }
        self.config
            .users
            .iter()
            .any(|u| u.name == user && u.password == password)
    }

    /// Whether the user a verified client certificate names may log in (EXTERNAL): it must be
    /// one of the broker's users; no password is checked. `guest` still only from loopback.
    pub fn authenticate_certificate(&self, user: &str, peer: SocketAddr) -> bool {
        if user == "guest" && !peer.ip().to_canonical().is_loopback() {
            return false;
        }
        self.config.users.iter().any(|u| u.name == user)
    }

    /// Reads the TLS certificate, key and CA files again (SIGHUP); new connections use them.
    pub fn reload_tls(&self) {
        match self.tls.as_ref().map(|tls| tls.reload()) {
            None => info!("no TLS listener: nothing to reload"),
            Some(Ok(())) => info!("TLS certificates reloaded"),
            Some(Err(e)) => warn!("TLS certificates not reloaded, the old ones stay: {e}"),
        }
    }

    pub fn next_consumer_id(&self) -> ConsumerId {
        ConsumerId(self.next_consumer_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A new session id: each AMQP channel opened is one session to the queues.
    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session_id.fetch_add(1, Ordering::Relaxed))
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Binds the listener and starts accepting connections.
    pub async fn start(config: Config) -> std::io::Result<RunningBroker> {
        std::fs::create_dir_all(&config.data_dir)?;
        let listener = crate::listener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let management = admin::bind(config.management_listen, config.tls.management).await?;
        let tls = match config.tls.effective_listen() {
            None if !config.tls.management => None,
            None => Some((Arc::new(Tls::load(&config.tls).map_err(std::io::Error::other)?), None)),
            Some(addr) => {
                let tls = Tls::load(&config.tls).map_err(std::io::Error::other)?;
                let listener = crate::listener::bind(addr).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot listen for AMQPS on {addr}: {e}"))
                })?;
                Some((Arc::new(tls), Some(listener)))
            }
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let budget = config
            .queue_memory_budget
            .resolve(resources::total_memory_bytes()) as usize;
        let (durability, definitions) = Durability::open(&config.data_dir, budget)
            .map_err(|e| std::io::Error::other(format!("cannot open the data directory: {e}")))?;
        let root = VHost::new("/", Some(durability.clone()));
        root.restore(&definitions);
        for d in definitions.queues.iter().filter(|q| q.vhost != "/") {
            warn!(
                "stored queue '{}' belongs to unknown vhost '{}'; left on disk",
                d.name, d.vhost
            );
        }
        let mut vhosts = HashMap::new();
        vhosts.insert("/".to_string(), root);
        let max_connections = config.max_connections;
        let data_dir =
            std::fs::canonicalize(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
        let alarms = resources::start_monitor(
            config.memory_high_watermark,
            config.disk_free_limit,
            config.data_dir.clone(),
            config.memory_paging_ratio,
            durability.paging.pressure.clone(),
        );
        let broker = Arc::new(Broker {
            config,
            alarms,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
            next_session_id: AtomicU64::new(1),
            shutdown: shutdown_rx,
            registry: Arc::new(crate::stats::Registry::new()),
            tls: tls.as_ref().map(|(tls, _)| tls.clone()),
        });
        info!(
            "Warren {} listening on {}, data dir {}",
            env!("CARGO_PKG_VERSION"),
            local_addr,
            data_dir.display()
        );
        let slots = Arc::new(Semaphore::new(max_connections));
        let accept = tokio::spawn(accept_loop(listener, None, broker.clone(), slots.clone()));
        let tls_addr = match tls {
            None | Some((_, None)) => None,
            Some((tls, Some(listener))) => {
                let addr = listener.local_addr()?;
                info!("AMQPS (TLS) listener at {addr}");
                let accept = accept_loop(listener, Some(tls), broker.clone(), slots.clone());
                tokio::spawn(accept);
                Some(addr)
            }
        };
        let management_addr = management.as_ref().and_then(|l| l.local_addr().ok());
        let https = broker.tls.clone().filter(|_| broker.config.tls.management);
        let admin = management.map(|l| tokio::spawn(admin::serve(l, broker.clone(), https)));
        Ok(RunningBroker {
            local_addr,
            tls_addr,
            management_addr,
            admin,
            broker,
            shutdown_tx,
            slots,
            max_connections,
            accept,
        })
    }
}

/// Accepts AMQP clients, over TLS when `tls` is given.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    broker: Arc<Broker>,
    slots: Arc<Semaphore>,
) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!("refusing connection from {peer}: max_connections reached");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let id = broker.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let broker = broker.clone();
        let tls = tls.clone();
        let local = socket.local_addr().unwrap_or(peer);
        tokio::spawn(async move {
            match tls {
                None => {
                    let transport = connection::Transport {
                        local,
                        external: false,
                        certificate_user: None,
                    };
                    connection::serve(broker, Box::new(socket), peer, id, transport).await
                }
                Some(tls) => {
                    let accepted = crate::tls::accept(&tls, &broker, socket, peer).await;
                    if let Some((socket, transport)) = accepted {
                        connection::serve(broker, socket, peer, id, transport).await
                    }
                }
            }
            drop(permit);
        });
    }
}

/// A started broker. Dropping it does not stop it; call [`RunningBroker::shutdown`].
pub struct RunningBroker {
    pub local_addr: SocketAddr,
    /// Where the AMQPS listener listens, if TLS is configured.
    pub tls_addr: Option<SocketAddr>,
    /// Where the HTTP management API listens, unless it is turned off.
    pub management_addr: Option<SocketAddr>,
    admin: Option<tokio::task::JoinHandle<()>>,
    pub broker: Arc<Broker>,
    shutdown_tx: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    max_connections: usize,
    accept: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// Stops accepting, closes every connection with 320 CONNECTION_FORCED, and waits (up
    /// to a grace period) for them to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.accept.await;
        if let Some(admin) = self.admin {
            let _ = admin.await;
        }
        let all = self.max_connections as u32;
        match tokio::time::timeout(SHUTDOWN_GRACE, self.slots.acquire_many(all)).await {
            Ok(_) => info!("all connections closed"),
            Err(_) => warn!("some connections did not close within {:?}", SHUTDOWN_GRACE),
        }
        // Then the delay stores (once stopped they route nothing to a stopped queue), then the
        // queues: each applies what it was sent, syncs its log (so that acks are durable after
        // a clean stop) and ends, before the runtime goes away under it.
        let vhosts: Vec<_> = self.broker.vhosts.values().cloned().collect();
        let stop_all = async {
            for v in &vhosts {
                for store in v.stop_exchanges() {
                    store.stop().await;
                }
            }
            for v in &vhosts {
                for q in v.all_queues() {
                    q.stop().await;
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, stop_all)
            .await
            .is_err()
        {
            warn!("some queues did not stop within {:?}", SHUTDOWN_GRACE);
        }
    }
}
