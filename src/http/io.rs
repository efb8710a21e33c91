//! Adapter from glommio's TCP stream to hyper 1's I/O traits.
//!
//! hyper reads into uninitialised memory; glommio's stream reads into an initialised slice. The
//! adapter zeroes at most [`READ_CHUNK`] bytes per read (cheap next to a syscall) so no
//! uninitialised byte is ever exposed. It owns nothing but the stream.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

const READ_CHUNK: usize = 64 * 1024;

pub struct GlommioIo(pub TcpStream);

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the slice is fully initialised below before it is read from or handed out, and
        // `advance` is called only with the count of bytes the stream wrote into it.
        let uninit: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        let n = uninit.len().min(READ_CHUNK);
        let chunk = &mut uninit[..n];
        for b in chunk.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `chunk` was initialised just above.
        let init: &mut [u8] = unsafe { &mut *(chunk as *mut [MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut self.0).poll_read(cx, init) {
            Poll::Ready(Ok(read)) => {
                // SAFETY: the stream initialised (wrote) `read` bytes at the cursor's start.
                unsafe { buf.advance(read) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
