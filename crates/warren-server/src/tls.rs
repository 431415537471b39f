//! TLS for the AMQPS listener, with the meaning of RabbitMQ's `ssl_options`: the server's
//! certificate chain and key (`certfile`, `keyfile`), the CA client certificates are checked
//! against (`cacertfile`), `verify_peer` (ask for a client certificate and refuse one the CA
//! does not vouch for) and `fail_if_no_peer_cert` (also refuse clients without one). TLS 1.2
//! and 1.3 (rustls with aws-lc-rs).
//!
//! It owns the current rustls configuration, swapped whole by [`Tls::reload`] (SIGHUP):
//! connections accepted afterwards use the new files, open ones keep their session. It also
//! reads the user name a client certificate carries for the EXTERNAL mechanism (the
//! subject's CN, as `rabbitmq_auth_mechanism_ssl` with `ssl_cert_login_from = common_name`).
//! It never decides whether that user may log in: the broker's users do. The management
//! API can serve HTTPS with the same configuration (`HttpsListener`).

use crate::broker::Broker;
use crate::config::TlsConfig;
use crate::connection::{Socket, Transport};
use arc_swap::ArcSwap;
use axum::serve::Listener;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {detail}")]
    File {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The TLS side of the AMQPS listener: its settings and the configuration they produce.
pub struct Tls {
    settings: TlsConfig,
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    /// Reads the certificate, key and CA files.
    pub fn load(settings: &TlsConfig) -> Result<Tls, TlsError> {
        let config = server_config(settings)?;
        Ok(Tls {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again; on any error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.settings)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// An acceptor with the configuration in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Whether clients are asked for certificates, which is when EXTERNAL is offered.
    pub fn verifies_peers(&self) -> bool {
        self.settings.verify_peer
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

fn server_config(settings: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let cert_file = settings
        .cert_file
        .as_deref()
        .ok_or(TlsError::Missing("tls.cert_file"))?;
    let key_file = settings
        .key_file
        .as_deref()
        .ok_or(TlsError::Missing("tls.key_file"))?;
    let chain = certificates(cert_file, "the certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
        what: "the private key",
        path: key_file.to_owned(),
        detail: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if settings.verify_peer {
        let ca_file = settings
            .ca_file
            .as_deref()
            .ok_or(TlsError::Missing("tls.ca_file"))?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(ca_file, "CA certificates")? {
            roots.add(ca)?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        let verifier = if settings.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(verifier.build()?)
    } else {
        builder.with_no_client_auth()
    };
    Ok(builder.with_single_cert(chain, key)?)
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |detail: String| TlsError::File {
        what,
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The user name in a verified client certificate: its subject's first CN.
pub fn certificate_user(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The TLS handshake with an accepted client, within the handshake timeout. `None` when it
/// failed (a plaintext client, a certificate the CA does not vouch for, a stalled peer): the
/// socket is dropped, as RabbitMQ's TLS listener does.
pub(crate) async fn accept(
    tls: &Tls,
    broker: &Broker,
    socket: TcpStream,
    peer: SocketAddr,
) -> Option<(Socket, Transport)> {
    let local = socket.local_addr().unwrap_or(peer);
    let timeout = Duration::from_millis(broker.config.handshake_timeout_ms);
    let stream = match tokio::time::timeout(timeout, tls.acceptor().accept(socket)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            info!(%peer, "TLS handshake failed: {e}");
            return None;
        }
        Err(_) => {
            info!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    let certificate_user = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(certificate_user);
    let transport = Transport {
        local,
        external: tls.verifies_peers(),
        certificate_user,
    };
    Some((Box::new(stream), transport))
}

/// The management API's listener over TLS: TCP connections are accepted and their TLS
/// handshakes run on tasks of their own (a slow handshake holds up no one), within the
/// handshake timeout; axum takes the finished streams.
pub(crate) struct HttpsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl HttpsListener {
    pub fn new(listener: TcpListener, tls: Arc<Tls>, broker: &Broker) -> HttpsListener {
        let local = listener.local_addr();
        let (ready_tx, ready) = mpsc::channel(64);
        let timeout = Duration::from_millis(broker.config.handshake_timeout_ms);
        let mut shutdown = broker.shutdown_signal();
        tokio::spawn(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            warn!("management accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = shutdown.changed() => return,
                };
                let acceptor = tls.acceptor();
                let ready_tx = ready_tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready_tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => info!(%peer, "management TLS handshake failed: {e}"),
                        Err(_) => info!(%peer, "management TLS handshake timed out"),
                    }
                });
            }
        });
        HttpsListener { ready, local }
    }
}

impl Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended with the broker: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
