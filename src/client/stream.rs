//! The client's connection to one radiant: plain TCP, or TLS 1.3 over it when the
//! options carry a TLS configuration (the radiant's certificate must chain to the CA
//! given and name the host connected to).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// A blocking stream to a radiant.
pub(crate) enum ClientStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl ClientStream {
    /// Wraps `socket` in TLS for `host` when `tls` is set. The handshake runs with the
    /// first write.
    pub(crate) fn new(
        socket: TcpStream,
        host: &str,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<ClientStream> {
        let Some(config) = tls else {
            return Ok(ClientStream::Plain(socket));
        };
        let name = crate::tls::server_name(host).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} is no TLS name"))
        })?;
        let session = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(|error| io::Error::other(format!("TLS: {error}")))?;
        Ok(ClientStream::Tls(Box::new(rustls::StreamOwned::new(session, socket))))
    }

    fn socket(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(socket) => socket,
            ClientStream::Tls(stream) => stream.get_ref(),
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }
}

impl Read for ClientStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(socket) => socket.read(buffer),
            ClientStream::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(socket) => socket.write(buffer),
            ClientStream::Tls(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(socket) => socket.flush(),
            ClientStream::Tls(stream) => stream.flush(),
        }
    }
}
