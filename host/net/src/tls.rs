//! Authenticated, encrypted host links: TLS 1.3 (rustls with ring), both ends presenting a
//! self-signed certificate ([`Identity`], made by `ditto keygen`) and each accepting only the
//! peer whose certificate has the SHA-256 [`Fingerprint`] pinned for its role ([`Pins`]: `p0`,
//! `p1`, `dealer`, `client`). There is no certificate authority: the pin is the trust. A peer
//! presenting any other certificate is refused with an error naming the expected and presented
//! fingerprints. [`Security::Plaintext`] exists only behind `--insecure-plaintext`.

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

use crate::NetError;
use crate::link::Stream;

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
}

fn tls_err(what: &'static str) -> impl Fn(rustls::Error) -> NetError {
    move |e| NetError::Tls { what, detail: e.to_string() }
}

fn handshake_err(what: &'static str) -> impl Fn(std::io::Error) -> NetError {
    move |e| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            NetError::Timeout { what, secs: 0.0 }
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
        let s = tokio::time::timeout(timeout, c.connect(Self::name(), tcp))
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
        let s = tokio::time::timeout(timeout, a.accept(tcp))
            .await
            .map_err(|_| NetError::Timeout { what: "TLS handshake", secs: timeout.as_secs_f64() })?
            .map_err(handshake_err("TLS handshake"))?;
        let role = presented.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok((Box::new(s), role))
    }

    /// [`Security::connect`] for a blocking socket (its read and write time-outs bound the handshake).
    pub fn connect_blocking(
        &self,
        mut tcp: std::net::TcpStream,
        peer: &str,
    ) -> Result<Box<dyn BlockingStream>, NetError> {
        let Security::Tls(t) = self else { return Ok(Box::new(tcp)) };
        let mut conn = rustls::ClientConnection::new(Arc::new(Self::client_config(t, peer)?), Self::name())
            .map_err(tls_err("TLS handshake"))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(handshake_err("TLS handshake"))?;
        }
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    /// [`Security::accept`] for a blocking socket.
    pub fn accept_blocking(
        &self,
        mut tcp: std::net::TcpStream,
        peers: &[&str],
    ) -> Result<(Box<dyn BlockingStream>, Option<String>), NetError> {
        let Security::Tls(t) = self else { return Ok((Box::new(tcp), None)) };
        let (cfg, presented) = Self::server_config(t, peers)?;
        let mut conn = rustls::ServerConnection::new(Arc::new(cfg)).map_err(tls_err("TLS handshake"))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(handshake_err("TLS handshake"))?;
        }
        let role = presented.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok((Box::new(rustls::StreamOwned::new(conn, tcp)), role))
    }
}
