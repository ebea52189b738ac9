//! A dealer board's serial device (a tty, its line speed set beforehand with `stty`): reads that
//! time out (a silent board is an error, not a hang) and input that can be discarded.
#![allow(unsafe_code)] // poll(2) and tcflush(3) on the device's descriptor

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::NodeError;

/// An open serial device.
pub struct Serial {
    file: File,
    timeout: Duration,
}

impl Serial {
    /// Opens `path` for reading and writing; each read waits at most `timeout` for a byte.
    pub fn open(path: &Path, timeout: Duration) -> Result<Self, NodeError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| NodeError::File { path: PathBuf::from(path), source })?;
        Ok(Serial { file, timeout })
    }

    /// Drops what the device received and nobody read (a tty's input queue; a device that is
    /// not a tty has none to drop).
    pub fn discard_input(&mut self) -> io::Result<()> {
        // SAFETY: a descriptor this value owns, open for its whole life.
        if unsafe { libc::tcflush(self.file.as_raw_fd(), libc::TCIFLUSH) } == 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOTTY) => Ok(()),
            e => Err(e),
        }
    }
}

impl Read for Serial {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ms = libc::c_int::try_from(self.timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        loop {
            let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd, alive for the call.
            match unsafe { libc::poll(&raw mut pfd, 1, ms) } {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the dealer board sent nothing for {} s", self.timeout.as_secs()),
                    ));
                }
                r if r > 0 => return self.file.read(buf),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl Write for Serial {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_device_times_out_and_data_is_read() {
        // A FIFO stands in for a tty: poll, read and the not-a-tty flush are the same.
        let dir = std::env::temp_dir().join(format!("ditto-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut s = Serial::open(&path, Duration::from_millis(200)).unwrap();
        let t = std::time::Instant::now();
        let e = s.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(190), "{:?}", t.elapsed());
        s.discard_input().unwrap();
        s.write_all(b"hey").unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hey");
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
