//! Authenticated, encrypted host links: TLS 1.3 (rustls with ring), both ends presenting a
//! self-signed certificate ([`Identity`], made by `ditto keygen`) and each accepting only the
//! peer whose certificate has the SHA-256 [`Fingerprint`] pinned for its role ([`Pins`]: `p0`,
//! `p1`, `dealer`, `client`). There is no certificate authority: the pin is the trust. A peer
//! presenting any other certificate is refused with an error naming the expected and presented
//! fingerprints. [`Security::Plaintext`] exists only behind `--insecure-plaintext`.
//!
//! The client and dealer links stay in TLS ([`Security::connect`], [`Security::accept`] and their
//! blocking forms). The P0 <-> P1 link, which carries hundreds of megabytes per inference, uses
//! the TLS handshake for authentication and key agreement only and then seals whole frames
//! itself ([`Security::link`], [`FrameSeal`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::NetError;

/// Anything a link or a client connection can run over (TCP, TLS over TCP, an in-memory duplex).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// The pin name of a party's role: `p0` or `p1`.
pub fn role(p: ditto_core::Party) -> &'static str {
    match p {
        ditto_core::Party::P0 => "p0",
        ditto_core::Party::P1 => "p1",
    }
}

/// The pin name of the other party's role.
pub fn peer_role(p: ditto_core::Party) -> &'static str {
    match p {
        ditto_core::Party::P0 => "p1",
        ditto_core::Party::P1 => "p0",
    }
}

/// SHA-256 of a certificate (DER), shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let s = s.trim();
        let bad =
            || NetError::Identity(format!("a fingerprint is 64 hex digits, found {} characters", s.len()));
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(b))
    }
}

/// This process's certificate and private key. The key never prints.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity {{ fingerprint: {}, key: <redacted> }}", self.fingerprint())
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { cert: self.cert.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// A fresh ECDSA P-256 key and self-signed certificate (from the OS RNG).
    pub fn generate() -> Result<Self, NetError> {
        let ck = rcgen::generate_simple_self_signed(vec!["ditto".to_string()])
            .map_err(|e| NetError::Identity(format!("generating a key pair: {e}")))?;
        let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .map_err(|e| NetError::Identity(format!("encoding the key: {e}")))?;
        Ok(Identity { cert: ck.cert.der().clone(), key })
    }

    /// The certificate's fingerprint (what peers pin).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// PEM: the certificate, then the private key. Secret.
    pub fn to_pem(&self) -> String {
        let cert = pem::Pem::new("CERTIFICATE", self.cert.to_vec());
        let key = pem::Pem::new("PRIVATE KEY", self.key.secret_der().to_vec());
        pem::encode(&cert) + &pem::encode(&key)
    }

    /// Reads [`Identity::to_pem`]'s format.
    pub fn from_pem(pem: &[u8]) -> Result<Self, NetError> {
        let cert = CertificateDer::from_pem_slice(pem)
            .map_err(|e| NetError::Identity(format!("no certificate in the identity file: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| NetError::Identity(format!("no private key in the identity file: {e}")))?;
        Ok(Identity { cert, key })
    }

    /// Loads an identity file.
    pub fn load(path: &Path) -> Result<Self, NetError> {
        let text = std::fs::read(path)
            .map_err(|e| NetError::Identity(format!("reading {}: {e}", path.display())))?;
        Self::from_pem(&text).map_err(|e| NetError::Identity(format!("{}: {e}", path.display())))
    }
}

/// The fingerprint pinned for each peer role. Text form: one `ROLE HEX` per line, `#` comments.
#[derive(Clone, Debug, Default)]
pub struct Pins(BTreeMap<String, Fingerprint>);

impl Pins {
    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let mut p = Pins::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some(role), Some(fp), None) = (it.next(), it.next(), it.next()) else {
                return Err(NetError::Identity(format!("line {}: expected `ROLE FINGERPRINT`", i + 1)));
            };
            p.pin(role, fp.parse().map_err(|e| NetError::Identity(format!("line {}: {e}", i + 1)))?);
        }
        Ok(p)
    }

    /// Pins `role` to `fp` (replacing an earlier pin).
    pub fn pin(&mut self, role: &str, fp: Fingerprint) {
        self.0.insert(role.to_string(), fp);
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|(r, f)| format!("{r} {f}\n")).collect()
    }

    fn allowed(&self, roles: &[&str]) -> Result<Vec<(String, Fingerprint)>, NetError> {
        roles
            .iter()
            .map(|r| {
                self.0.get(*r).map(|f| ((*r).to_string(), *f)).ok_or_else(|| {
                    NetError::Identity(format!("no fingerprint pinned for the `{r}` peer (--trust / --pin)"))
                })
            })
            .collect()
    }
}

/// How this process secures its links.
#[derive(Clone, Debug)]
pub enum Security {
    /// TLS 1.3 with pinned peers (the default).
    Tls(Arc<Tls>),
    /// Plain TCP: only behind `--insecure-plaintext`.
    Plaintext,
}

/// An identity and the pins of its peers.
#[derive(Debug)]
pub struct Tls {
    identity: Identity,
    pins: Pins,
    provider: Arc<CryptoProvider>,
}

/// A blocking stream (the dealer's links).
pub trait BlockingStream: Read + Write + Send {}
impl<T: Read + Write + Send> BlockingStream for T {}

/// The peer's role as its certificate proves it.
type Presented = Arc<Mutex<Option<String>>>;

#[derive(Debug)]
struct Pinned {
    allowed: Vec<(String, Fingerprint)>,
    algs: WebPkiSupportedAlgorithms,
    presented: Presented,
}

impl Pinned {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let fp = Fingerprint::of(cert);
        match self.allowed.iter().find(|(_, f)| *f == fp) {
            Some((role, _)) => {
                *self.presented.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(role.clone());
                Ok(())
            }
            None => {
                let expected: Vec<String> = self.allowed.iter().map(|(r, f)| format!("{r} {f}")).collect();
                Err(rustls::Error::General(format!(
                    "peer identity refused: it presented {fp}, expected {}",
                    expected.join(" or ")
                )))
            }
        }
    }
}

/// The handshake-signature checks both verifier traits ask for: the provider's algorithms over
/// the pinned certificate's key.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(m, c, d, &self.algs)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(m, c, d, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }
    handshake_signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }
    handshake_signatures!();
}

/// The byte the P0 <-> P1 acceptor sends once its handshake is complete.
const READY: u8 = 0xA5;
/// Exporter label of the P0 <-> P1 frame keys (RFC 8446, section 7.5).
const LINK_LABEL: &[u8] = b"EXPORTER-ditto-p0p1-frames-v1";

/// Exports the two frame keys and checks the connection holds nothing unread or unsent.
fn export<D>(conn: &mut rustls::ConnectionCommon<D>, keys: &mut [u8; 32]) -> Result<(), NetError> {
    let st = conn.process_new_packets().map_err(tls_err("TLS handshake"))?;
    if st.plaintext_bytes_to_read() > 0 || st.tls_bytes_to_write() > 0 {
        return Err(NetError::Tls {
            what: "TLS handshake",
            detail: "unexpected data after the handshake".into(),
        });
    }
    conn.export_keying_material(&mut keys[..], LINK_LABEL, None).map_err(tls_err("TLS key export"))?;
    Ok(())
}

/// AES-128-GCM over P0 <-> P1 frames, one key per direction from the TLS exporter. A frame's
/// payload is sealed in chunks of [`CHUNK`] bytes (at least one, so that an empty payload is
/// authenticated too), each with its own tag, so that encryption and decryption interleave with
/// the socket instead of waiting for a whole message of hundreds of megabytes. The nonce is the
/// chunk's sequence number in its direction (never reused: a key lives for one connection); the
/// frame header is the associated data, so a changed, dropped, replayed or reordered frame or
/// chunk fails authentication.
pub struct FrameSeal {
    /// Outgoing.
    pub tx: SealHalf,
    /// Incoming.
    pub rx: SealHalf,
}

/// One direction of a [`FrameSeal`].
pub struct SealHalf {
    key: ring::aead::LessSafeKey,
    n: u64,
}

impl fmt::Debug for FrameSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameSeal {{ sent: {}, received: {}, keys: <redacted> }}", self.tx.n, self.rx.n)
    }
}

/// Bytes each sealed chunk adds (its tag).
pub const TAG: usize = 16;
/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 1 << 18;

/// Sealed chunks of a payload of `len` bytes.
pub fn chunks(len: usize) -> usize {
    len.div_ceil(CHUNK).max(1)
}

impl FrameSeal {
    fn new(tx: &[u8], rx: &[u8]) -> Result<Self, NetError> {
        let key = |k: &[u8]| {
            ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, k)
                .map(|k| SealHalf { key: ring::aead::LessSafeKey::new(k), n: 0 })
                .map_err(|_| NetError::Tls { what: "TLS key export", detail: "bad key length".into() })
        };
        Ok(FrameSeal { tx: key(tx)?, rx: key(rx)? })
    }
}

impl SealHalf {
    fn nonce(&mut self) -> ring::aead::Nonce {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&self.n.to_be_bytes());
        self.n += 1;
        ring::aead::Nonce::assume_unique_for_key(b)
    }

    /// Encrypts one chunk in place under the next nonce; returns its tag.
    pub fn seal(&mut self, header: &[u8], chunk: &mut [u8]) -> Result<[u8; TAG], NetError> {
        let n = self.nonce();
        let tag = self
            .key
            .seal_in_place_separate_tag(n, ring::aead::Aad::from(header), chunk)
            .map_err(|_| NetError::Tls { what: "sealing a frame", detail: "AEAD failure".into() })?;
        let mut t = [0u8; TAG];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    /// Decrypts one chunk in place under the next nonce, checking its tag.
    pub fn open(&mut self, header: &[u8], chunk: &mut [u8], tag: [u8; TAG]) -> Result<(), NetError> {
        let at = self.n;
        let n = self.nonce();
        self.key
            .open_in_place_separate_tag(n, ring::aead::Aad::from(header), tag.into(), chunk, 0..)
            .map(|_| ())
            .map_err(|_| NetError::Tls {
                what: "peer frame",
                detail: format!(
                    "chunk {at} failed authentication: tampered, replayed or not from the pinned peer"
                ),
            })
    }
}

/// Socket read buffer under TLS: rustls asks for 4 KiB at a time, which would cost a system
/// call per 4 KiB of a message that can be hundreds of megabytes.
const READ_BUFFER: usize = 1 << 20;

/// An async socket with a read buffer for TLS; writes go straight through.
fn buffered(tcp: tokio::net::TcpStream) -> tokio::io::BufReader<tokio::net::TcpStream> {
    tokio::io::BufReader::with_capacity(READ_BUFFER, tcp)
}

/// A blocking socket with a read buffer; writes go straight through.
struct BufferedSock(std::io::BufReader<std::net::TcpStream>);

impl Read for BufferedSock {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for BufferedSock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.get_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.get_mut().flush()
    }
}

fn tls_err(what: &'static str) -> impl Fn(rustls::Error) -> NetError {
    move |e| NetError::Tls { what, detail: e.to_string() }
}

fn handshake_err(what: &'static str) -> impl Fn(std::io::Error) -> NetError {
    move |e| match e.kind() {
        // A blocking socket's read or write time-out.
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            NetError::Tls { what, detail: "timed out waiting for the peer".into() }
        }
        _ => NetError::Tls { what, detail: e.to_string() },
    }
}

impl Security {
    /// TLS with `identity`, accepting the peers in `pins`.
    pub fn tls(identity: Identity, pins: Pins) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Security::Tls(Arc::new(Tls { identity, pins, provider }))
    }

    /// Fresh identities for roles that all live in this process (`ditto demo`, `ditto bench`):
    /// each pins every other's.
    pub fn ephemeral(roles: &[&str]) -> Result<Vec<Self>, NetError> {
        let ids = roles.iter().map(|_| Identity::generate()).collect::<Result<Vec<_>, _>>()?;
        let mut pins = Pins::default();
        for (r, id) in roles.iter().zip(&ids) {
            pins.pin(r, id.fingerprint());
        }
        Ok(ids.into_iter().map(|id| Security::tls(id, pins.clone())).collect())
    }

    /// This process's fingerprint (`None` in plaintext).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Security::Tls(t) => Some(t.identity.fingerprint()),
            Security::Plaintext => None,
        }
    }

    fn verifier(t: &Tls, roles: &[&str]) -> Result<(Arc<Pinned>, Presented), NetError> {
        let presented = Presented::default();
        let v = Pinned {
            allowed: t.pins.allowed(roles)?,
            algs: t.provider.signature_verification_algorithms,
            presented: Arc::clone(&presented),
        };
        Ok((Arc::new(v), presented))
    }

    fn client_config(t: &Tls, peer: &str) -> Result<rustls::ClientConfig, NetError> {
        let (v, _) = Self::verifier(t, &[peer])?;
        rustls::ClientConfig::builder_with_provider(Arc::clone(&t.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("configuring TLS"))?
            .dangerous()
            .with_custom_certificate_verifier(v)
            .with_client_auth_cert(vec![t.identity.cert.clone()], t.identity.key.clone_key())
            .map_err(tls_err("configuring TLS"))
    }

    fn server_config(t: &Tls, peers: &[&str]) -> Result<(rustls::ServerConfig, Presented), NetError> {
        let (v, presented) = Self::verifier(t, peers)?;
        let c = rustls::ServerConfig::builder_with_provider(Arc::clone(&t.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err("configuring TLS"))?
            .with_client_cert_verifier(v)
            .with_single_cert(vec![t.identity.cert.clone()], t.identity.key.clone_key())
            .map_err(tls_err("configuring TLS"))?;
        let mut c = c;
        // No resumption, and nothing after the handshake that the P0 <-> P1 link would have to
        // skip (it leaves TLS once the keys are agreed).
        c.send_tls13_tickets = 0;
        Ok((c, presented))
    }

    fn name() -> ServerName<'static> {
        ServerName::try_from("ditto").unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
    }

    /// Secures a connection this process opened to the `peer` role.
    pub async fn connect(
        &self,
        tcp: tokio::net::TcpStream,
        peer: &str,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, NetError> {
        let Security::Tls(t) = self else { return Ok(Box::new(tcp)) };
        let c = tokio_rustls::TlsConnector::from(Arc::new(Self::client_config(t, peer)?));
        let s = tokio::time::timeout(timeout, c.connect(Self::name(), buffered(tcp)))
            .await
            .map_err(|_| NetError::Timeout { what: "TLS handshake", secs: timeout.as_secs_f64() })?
            .map_err(handshake_err("TLS handshake"))?;
        Ok(Box::new(s))
    }

    /// Secures a connection accepted from one of the `peers` roles; returns the role its
    /// certificate proves (`None` in plaintext).
    pub async fn accept(
        &self,
        tcp: tokio::net::TcpStream,
        peers: &[&str],
        timeout: Duration,
    ) -> Result<(Box<dyn Stream>, Option<String>), NetError> {
        let Security::Tls(t) = self else { return Ok((Box::new(tcp), None)) };
        let (cfg, presented) = Self::server_config(t, peers)?;
        let a = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let s = tokio::time::timeout(timeout, a.accept(buffered(tcp)))
            .await
            .map_err(|_| NetError::Timeout { what: "TLS handshake", secs: timeout.as_secs_f64() })?
            .map_err(handshake_err("TLS handshake"))?;
        let role = presented.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok((Box::new(s), role))
    }

    /// The P0 <-> P1 link: the TLS 1.3 handshake authenticates the peer (pinned) and agrees on
    /// keys, then the link leaves TLS's record layer for [`FrameSeal`] (AES-128-GCM over whole
    /// frames, keys from the handshake's exporter): the same protection without TLS's 16 KiB
    /// records, copies and allocations on messages of hundreds of megabytes. `initiator` is the
    /// side that connected (TLS client). Returns the socket and the seal (none in plaintext).
    pub async fn link(
        &self,
        tcp: tokio::net::TcpStream,
        peer: &str,
        initiator: bool,
        timeout: Duration,
    ) -> Result<(Box<dyn Stream>, Option<FrameSeal>), NetError> {
        let Security::Tls(t) = self else { return Ok((Box::new(tcp), None)) };
        let late = |_| NetError::Timeout { what: "TLS handshake", secs: timeout.as_secs_f64() };
        let hs = handshake_err("TLS handshake");
        let mut keys = [0u8; 32];
        let mut io = if initiator {
            let c = tokio_rustls::TlsConnector::from(Arc::new(Self::client_config(t, peer)?));
            let mut s = tokio::time::timeout(timeout, c.connect(Self::name(), tcp))
                .await
                .map_err(late)?
                .map_err(&hs)?;
            s.flush().await.map_err(&hs)?;
            let (io, mut conn) = s.into_inner();
            export(&mut conn, &mut keys)?;
            io
        } else {
            let (cfg, _) = Self::server_config(t, &[peer])?;
            let a = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
            let s = tokio::time::timeout(timeout, a.accept(tcp)).await.map_err(late)?.map_err(&hs)?;
            let (io, mut conn) = s.into_inner();
            export(&mut conn, &mut keys)?;
            io
        };
        // The initiator sends nothing after its Finished until the acceptor says so: no frame
        // byte can have been read into (and lost in) the acceptor's TLS buffers.
        let mut ready = [READY];
        let sync = async {
            if initiator {
                io.read_exact(&mut ready).await?;
            } else {
                io.write_all(&ready).await?;
                io.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        tokio::time::timeout(timeout, sync).await.map_err(late)?.map_err(&hs)?;
        if ready[0] != READY {
            return Err(NetError::Tls {
                what: "TLS handshake",
                detail: "no ready mark after the handshake".into(),
            });
        }
        let (c2s, s2c) = keys.split_at(16);
        let seal = if initiator { FrameSeal::new(c2s, s2c) } else { FrameSeal::new(s2c, c2s) };
        keys.fill(0);
        Ok((Box::new(io), Some(seal?)))
    }

    /// [`Security::connect`] for a blocking socket (its read and write time-outs bound the handshake).
    pub fn connect_blocking(
        &self,
        tcp: std::net::TcpStream,
        peer: &str,
    ) -> Result<Box<dyn BlockingStream>, NetError> {
        let Security::Tls(t) = self else { return Ok(Box::new(tcp)) };
        let mut conn = rustls::ClientConnection::new(Arc::new(Self::client_config(t, peer)?), Self::name())
            .map_err(tls_err("TLS handshake"))?;
        let mut tcp = BufferedSock(std::io::BufReader::with_capacity(READ_BUFFER, tcp));
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(handshake_err("TLS handshake"))?;
        }
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    /// [`Security::accept`] for a blocking socket.
    pub fn accept_blocking(
        &self,
        tcp: std::net::TcpStream,
        peers: &[&str],
    ) -> Result<(Box<dyn BlockingStream>, Option<String>), NetError> {
        let Security::Tls(t) = self else { return Ok((Box::new(tcp), None)) };
        let (cfg, presented) = Self::server_config(t, peers)?;
        let mut conn = rustls::ServerConnection::new(Arc::new(cfg)).map_err(tls_err("TLS handshake"))?;
        let mut tcp = BufferedSock(std::io::BufReader::with_capacity(READ_BUFFER, tcp));
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(handshake_err("TLS handshake"))?;
        }
        let role = presented.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok((Box::new(rustls::StreamOwned::new(conn, tcp)), role))
    }
}
