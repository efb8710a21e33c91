//! Adapter from glommio's TCP stream to hyper 1's I/O traits.
//!
//! hyper reads into uninitialised memory; glommio's stream reads into an initialised slice. So
//! the adapter first asks the kernel directly (a non-blocking `recv`, as glommio itself does
//! first), which writes into hyper's buffer without it being zeroed; only when nothing is there
//! does it zero at most [`READ_CHUNK`] bytes and hand them to glommio, which then arms its
//! readiness poll. No uninitialised byte is ever exposed. It owns the stream and tells the
//! connection's [`Watch`] what moved; a read that would wait fails once the watch says the
//! connection's time is up.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

use super::conn::Watch;

const READ_CHUNK: usize = 4 * 1024;

pub struct GlommioIo {
    stream: TcpStream,
    watch: Watch,
}

impl GlommioIo {
    pub fn new(stream: TcpStream, watch: Watch) -> GlommioIo {
        GlommioIo { stream, watch }
    }

    /// Nothing to read yet: `Pending`, or the timeout error once the connection's time is up.
    fn wait(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.watch.poll_expired(cx) {
            Poll::Ready(e) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: no byte of the slice is read here; `advance` is called only with the count of
        // bytes the kernel or the stream wrote into it.
        let uninit: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        // Zeroing hyper's whole buffer before each read was ~1% of a shard's time under ingest.
        // SAFETY: the kernel writes at most `len` bytes at the pointer, all within the slice.
        let got = unsafe {
            libc::recv(self.stream.as_raw_fd(), uninit.as_mut_ptr().cast(), uninit.len(), libc::MSG_DONTWAIT)
        };
        if got >= 0 {
            // SAFETY: the kernel initialised (wrote) `got` bytes at the cursor's start.
            unsafe { buf.advance(got as usize) };
            self.watch.on_read(got as usize);
            return Poll::Ready(Ok(()));
        }
        let err = io::Error::last_os_error();
        if !matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
            return Poll::Ready(Err(err));
        }
        let n = uninit.len().min(READ_CHUNK);
        let chunk = &mut uninit[..n];
        for b in chunk.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `chunk` was initialised just above.
        let init: &mut [u8] = unsafe { &mut *(chunk as *mut [MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut self.stream).poll_read(cx, init) {
            Poll::Ready(Ok(read)) => {
                // SAFETY: the stream initialised (wrote) `read` bytes at the cursor's start.
                unsafe { buf.advance(read) };
                self.watch.on_read(read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.wait(cx),
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.watch.on_write();
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
