//! The link a request came on, as one type: the dealer's code (generic over its link) is then
//! compiled once for every link a board has, not once per link (which doubled the image).

use embedded_io::{Error as _, ErrorKind};
use smoltcp::phy::Device;

use crate::net::Net;

/// The UART or a TCP connection.
pub enum Link<'a, U, D: Device> {
    /// The board's UART.
    Uart(&'a mut U),
    /// The active connection on the board's Ethernet.
    Tcp(&'a mut Net<D>),
}

impl<U: embedded_io::ErrorType, D: Device> embedded_io::ErrorType for Link<'_, U, D> {
    type Error = ErrorKind;
}

impl<U: embedded_io::Read, D: Device> embedded_io::Read for Link<'_, U, D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        match self {
            Link::Uart(u) => u.read(buf).map_err(|e| e.kind()),
            Link::Tcp(n) => n.read(buf),
        }
    }
}

impl<U: embedded_io::Write, D: Device> embedded_io::Write for Link<'_, U, D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        match self {
            Link::Uart(u) => u.write(buf).map_err(|e| e.kind()),
            Link::Tcp(n) => n.write(buf),
        }
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        match self {
            Link::Uart(u) => u.flush().map_err(|e| e.kind()),
            Link::Tcp(n) => n.flush(),
        }
    }
}

impl<U: embedded_io::ReadReady, D: Device> embedded_io::ReadReady for Link<'_, U, D> {
    /// Whether the UART has a byte; a TCP connection is never drained (it is reset instead).
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        match self {
            Link::Uart(u) => u.read_ready().map_err(|e| e.kind()),
            Link::Tcp(_) => Ok(false),
        }
    }
}
