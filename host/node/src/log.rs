//! A serving party's log lines, written by a thread of their own: the serving loop hands a
//! line over and goes on, so a slow or paused standard output (a terminal on hold, a pipe
//! nobody reads) never holds requests up. Up to [`BACKLOG`] lines wait; past that, lines are
//! dropped and counted, and the next line written says how many were lost.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Lines waiting for the writer before further ones are dropped.
pub const BACKLOG: usize = 4096;

/// A log that never blocks its callers (see the module docs).
pub struct Log {
    tx: Mutex<Option<SyncSender<String>>>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Log {
    /// Starts the thread writing lines to `out`.
    pub fn spawn(out: impl Write + Send + 'static) -> Arc<Self> {
        Self::with_backlog(out, BACKLOG)
    }

    fn with_backlog(mut out: impl Write + Send + 'static, backlog: usize) -> Arc<Self> {
        let (tx, rx): (SyncSender<String>, Receiver<String>) = std::sync::mpsc::sync_channel(backlog);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&dropped);
        let writer = std::thread::spawn(move || {
            for line in rx {
                let lost = d.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    let _ = writeln!(
                        out,
                        "log-dropped lines={lost} reason=\"the output was not read fast enough\""
                    );
                }
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
            let lost = d.swap(0, Ordering::Relaxed);
            if lost > 0 {
                let _ =
                    writeln!(out, "log-dropped lines={lost} reason=\"the output was not read fast enough\"");
            }
            let _ = out.flush();
        });
        Arc::new(Log { tx: Mutex::new(Some(tx)), dropped, writer: Mutex::new(Some(writer)) })
    }

    /// Hands `line` to the writer; drops it (counted) when [`BACKLOG`] lines already wait.
    pub fn line(&self, line: String) {
        let tx = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match tx.as_ref().map(|t| t.try_send(line)) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes the lines still waiting and stops the writer (later lines are dropped). Blocks
    /// until the output took them: call it when the process is about to exit.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        if let Some(w) = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = w.join();
        }
    }

    /// This log as the serving functions take it.
    pub fn sink(self: &Arc<Self>) -> Arc<dyn Fn(String) + Send + Sync> {
        let me = Arc::clone(self);
        Arc::new(move |l| me.line(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that takes nothing until released, then keeps what it is given.
    #[derive(Clone, Default)]
    struct Held {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Held {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (m, cv) = &*self.open;
            let mut open = m.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// With the output held, logging returns at once; lines past the backlog are dropped and
    /// counted; once released, every kept line is written in order, after the count.
    #[test]
    fn a_held_output_never_blocks_the_logger() {
        let out = Held::default();
        let log = Log::with_backlog(out.clone(), 4);
        let t = std::time::Instant::now();
        for i in 0..20 {
            log.line(format!("line {i}"));
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        log.close();
        log.line("after close".into());
        let text = String::from_utf8(out.got.lock().unwrap().clone()).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| l.starts_with("line ")).collect();
        let counts: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("log-dropped lines=")?.split(' ').next()?.parse().ok())
            .collect();
        // The writer holds at most one line while blocked and 4 wait: the first 4 or 5 lines
        // are written, in order; the rest were dropped and said so, once.
        assert!(kept.len() == 4 || kept.len() == 5, "{text}");
        assert!(kept.iter().enumerate().all(|(i, l)| *l == format!("line {i}")), "{text}");
        assert_eq!(counts, [20 - kept.len() as u64], "{text}");
        assert!(!text.contains("after close"), "{text}");
    }
}
