//! Authenticated encryption of RPC streams with the cluster secret.
//!
//! Why Noise `NNpsk0`: every node of a cluster shares one secret and nothing else (no
//! certificates to issue or rotate). With the secret mixed in as a pre-shared key before
//! the first message, a peer that does not know it cannot produce or read a single valid
//! frame: the responder rejects the very first handshake message, and we log that as a
//! secret mismatch. Ephemeral keys come from the seam's seeded RNG so the simulation replays
//! handshakes bit for bit.
//!
//! Framing after the handshake: each Noise message travels as `u16 length ‖ ciphertext`;
//! an application message is `u32 length ‖ bytes`, cut into Noise messages of at most
//! `NOISE_PLAINTEXT_MAX` bytes. One writer task owns the send side, so messages never
//! interleave.

use std::io;

use rand_core::RngCore;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::{StatelessTransportState, params::NoiseParams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::seam::NodeRng;

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const NOISE_MESSAGE_MAX: usize = 65535;
const TAG_LEN: usize = 16;
const NOISE_PLAINTEXT_MAX: usize = NOISE_MESSAGE_MAX - TAG_LEN;
/// Largest application message accepted; bounds the memory a peer can make us allocate.
pub const MESSAGE_MAX_BYTES: usize = 64 << 20;

/// Derives the 32-byte pre-shared key from the operator's secret string.
pub fn psk_from_secret(secret: &str) -> [u8; 32] {
    blake3::derive_key("hangar rpc psk v1", secret.as_bytes())
}

/// Resolves Noise primitives with the default (pure Rust) crypto, but randomness from the
/// seam instead of the OS.
struct SeededResolver {
    seed: [u8; 32],
}

struct SeededRandom(NodeRng);

impl snow::types::Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        use rand_core::SeedableRng;
        Some(Box::new(SeededRandom(NodeRng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, c: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        DefaultResolver.resolve_dh(c)
    }
    fn resolve_hash(&self, c: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        DefaultResolver.resolve_hash(c)
    }
    fn resolve_cipher(
        &self,
        c: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        DefaultResolver.resolve_cipher(c)
    }
}

/// Why a handshake failed; `BadSecret` is the operator-facing one.
#[derive(Debug)]
pub enum HandshakeError {
    Io(io::Error),
    /// The peer's first message did not authenticate: it uses another cluster secret.
    BadSecret,
    /// The peer closed the stream mid-handshake — typically it refused our secret.
    ClosedByPeer,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "i/o error during handshake: {e}"),
            HandshakeError::BadSecret => {
                write!(f, "peer does not share our cluster secret (check rpc_secret)")
            }
            HandshakeError::ClosedByPeer => write!(
                f,
                "peer closed the connection during the handshake (does it share our rpc_secret?)"
            ),
        }
    }
}

fn builder<'a>(psk: &'a [u8; 32], rng: &mut NodeRng) -> snow::Builder<'a> {
    let params: NoiseParams = PATTERN.parse().expect("valid Noise pattern");
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let resolver = Box::new(SeededResolver { seed });
    snow::Builder::with_resolver(params, resolver).psk(0, psk).expect("psk slot 0 exists in NNpsk0")
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<()> {
    let len = r.read_u16().await? as usize;
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(())
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(2 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    frame.extend_from_slice(bytes);
    w.write_all(&frame).await?;
    w.flush().await
}

fn eof_is_closed(e: io::Error) -> HandshakeError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        HandshakeError::ClosedByPeer
    } else {
        HandshakeError::Io(e)
    }
}

/// Runs the initiator side of the handshake.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    psk: &[u8; 32],
    rng: &mut NodeRng,
) -> Result<StatelessTransportState, HandshakeError> {
    let mut hs = builder(psk, rng).build_initiator().expect("valid initiator");
    let mut buf = vec![0u8; NOISE_MESSAGE_MAX];
    let n = hs.write_message(&[], &mut buf).expect("first message fits");
    write_frame(stream, &buf[..n]).await.map_err(HandshakeError::Io)?;
    let mut frame = Vec::new();
    read_frame(stream, &mut frame).await.map_err(eof_is_closed)?;
    hs.read_message(&frame, &mut buf).map_err(|_| HandshakeError::BadSecret)?;
    Ok(hs.into_stateless_transport_mode().expect("handshake finished"))
}

/// Runs the responder side of the handshake.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    psk: &[u8; 32],
    rng: &mut NodeRng,
) -> Result<StatelessTransportState, HandshakeError> {
    let mut hs = builder(psk, rng).build_responder().expect("valid responder");
    let mut buf = vec![0u8; NOISE_MESSAGE_MAX];
    let mut frame = Vec::new();
    read_frame(stream, &mut frame).await.map_err(eof_is_closed)?;
    hs.read_message(&frame, &mut buf).map_err(|_| HandshakeError::BadSecret)?;
    let n = hs.write_message(&[], &mut buf).expect("second message fits");
    write_frame(stream, &buf[..n]).await.map_err(HandshakeError::Io)?;
    Ok(hs.into_stateless_transport_mode().expect("handshake finished"))
}

impl Default for Sealer {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Opener {
    fn default() -> Self {
        Self::new()
    }
}

/// The sending half of an encrypted stream.
pub struct Sealer {
    nonce: u64,
    buf: Vec<u8>,
}

impl Sealer {
    pub fn new() -> Self {
        Sealer { nonce: 0, buf: vec![0u8; NOISE_MESSAGE_MAX] }
    }

    /// Encrypts and writes one application message.
    pub async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        noise: &StatelessTransportState,
        message: &[u8],
    ) -> io::Result<()> {
        assert!(message.len() <= MESSAGE_MAX_BYTES, "message over MESSAGE_MAX_BYTES");
        let mut plain = Vec::with_capacity(4 + message.len());
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        let mut out = Vec::with_capacity(plain.len() + plain.len() / NOISE_PLAINTEXT_MAX * 18 + 18);
        for chunk in plain.chunks(NOISE_PLAINTEXT_MAX) {
            let n = noise
                .write_message(self.nonce, chunk, &mut self.buf)
                .map_err(|e| io::Error::other(format!("noise encrypt: {e}")))?;
            self.nonce += 1;
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&self.buf[..n]);
        }
        w.write_all(&out).await?;
        w.flush().await
    }
}

/// The receiving half of an encrypted stream.
pub struct Opener {
    nonce: u64,
    plain: Vec<u8>,
    frame: Vec<u8>,
    buf: Vec<u8>,
}

impl Opener {
    pub fn new() -> Self {
        Opener { nonce: 0, plain: Vec::new(), frame: Vec::new(), buf: vec![0u8; NOISE_MESSAGE_MAX] }
    }

    /// Reads and decrypts the next application message.
    pub async fn recv<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        noise: &StatelessTransportState,
    ) -> io::Result<Vec<u8>> {
        loop {
            if self.plain.len() >= 4 {
                let len = u32::from_be_bytes(self.plain[..4].try_into().unwrap()) as usize;
                if len > MESSAGE_MAX_BYTES {
                    return Err(io::Error::other(format!("peer sent a {len}-byte message")));
                }
                if self.plain.len() >= 4 + len {
                    let rest = self.plain.split_off(4 + len);
                    let msg = std::mem::replace(&mut self.plain, rest);
                    return Ok(msg[4..].to_vec());
                }
            }
            read_frame(r, &mut self.frame).await?;
            let n = noise
                .read_message(self.nonce, &self.frame, &mut self.buf)
                .map_err(|e| io::Error::other(format!("noise decrypt: {e}")))?;
            self.nonce += 1;
            self.plain.extend_from_slice(&self.buf[..n]);
        }
    }
}
