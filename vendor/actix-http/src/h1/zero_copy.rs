//! Zero-copy writes of file-backed body chunks: an application can tell the HTTP/1 dispatcher
//! that some `Bytes` are a view of a file, and the dispatcher then sends them to a TCP socket
//! with `sendfile` (Linux) instead of copying them into the socket with `writev`.
//!
//! (Added to the vendored crate; not part of upstream actix-http.)

use std::sync::{
    atomic::{AtomicU64, Ordering},
    OnceLock,
};

/// Says whether a body chunk's bytes are a view of a file, and where: `(file, offset)`, the
/// chunk's first byte being at `offset` in the file.
///
/// # Contract
/// The kernel keeps references to the file's pages after `sendfile` returns, until the peer
/// has the data. So the application must never change those bytes in place: not while any
/// chunk that points at them exists, and not after either. It may free them (punch a hole,
/// truncate), which leaves the pages the kernel still holds untouched, and write new data
/// only into ranges it freed that way or never used.
pub type Resolver = fn(&[u8]) -> Option<(std::os::fd::RawFd, u64)>;

static RESOLVER: OnceLock<Resolver> = OnceLock::new();
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);

/// Registers the resolver for the whole process. Returns `false` (and changes nothing) when
/// one is already registered.
pub fn set_resolver(resolver: Resolver) -> bool {
    RESOLVER.set(resolver).is_ok()
}

/// Bytes sent with `sendfile` so far, in this process.
pub fn sent_bytes() -> u64 {
    SENT_BYTES.load(Ordering::Relaxed)
}

pub(crate) fn resolver() -> Option<Resolver> {
    RESOLVER.get().copied()
}

#[cfg(target_os = "linux")]
pub(crate) use linux::poll_write_queue;

#[cfg(target_os = "linux")]
mod linux {
    use std::{
        collections::VecDeque,
        io,
        os::fd::{AsRawFd, RawFd},
        sync::atomic::Ordering,
        task::{ready, Context, Poll},
    };

    use bytes::{Bytes, BytesMut};
    use tokio::{io::Interest, net::TcpStream};

    use super::{Resolver, SENT_BYTES};
    use crate::h1::dispatcher::{consume_written, gather_queued, MAX_IO_SLICES};

    /// Writes `queue` then `write_buf` to `stream`, in order: file-backed chunks with
    /// `sendfile`, runs of other bytes with `sendmsg` (flagged `MSG_MORE` when a file-backed
    /// chunk follows, so the headers and the body leave in one segment). Ready once the
    /// queue is empty; `write_buf` may keep a rest, which the caller writes as usual.
    pub(crate) fn poll_write_queue(
        stream: &TcpStream,
        cx: &mut Context<'_>,
        queue: &mut VecDeque<Bytes>,
        write_buf: &mut BytesMut,
        resolve: Resolver,
    ) -> Poll<io::Result<()>> {
        let socket = stream.as_raw_fd();
        while let Some(front) = queue.front() {
            let written = match resolve(front) {
                Some((file, offset)) => {
                    let len = front.len();
                    let n = ready!(ready_io(stream, cx, || send_file(
                        socket, file, offset, len
                    )))?;
                    SENT_BYTES.fetch_add(n as u64, Ordering::Relaxed);
                    n
                }
                None => {
                    let mut slices = [io::IoSlice::new(&[]); MAX_IO_SLICES];
                    let (count, file_follows) =
                        gather_queued(queue, write_buf, &mut slices, |chunk| {
                            resolve(chunk).is_some()
                        });
                    let slices = &slices[..count];
                    ready!(ready_io(stream, cx, || {
                        send_slices(socket, slices, file_follows)
                    }))?
                }
            };
            if written == 0 {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "")));
            }
            consume_written(queue, write_buf, written);
        }
        Poll::Ready(Ok(()))
    }

    /// Runs a non-blocking write on the socket once it is writable; `Pending` (with the
    /// waker registered by tokio, whose readiness `try_io` clears) while it would block.
    fn ready_io(
        stream: &TcpStream,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_io(Interest::WRITABLE, &mut write) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn send_file(socket: RawFd, file: RawFd, offset: u64, len: usize) -> io::Result<usize> {
        let mut offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: both descriptors are open for the duration of the call (the socket is
        // owned by the stream, the file by the resolver's owner, which the chunk keeps
        // alive), and `offset` is a valid `off_t` the kernel may update.
        let n = unsafe { libc::sendfile(socket, file, &mut offset, len) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn send_slices(socket: RawFd, slices: &[io::IoSlice<'_>], more: bool) -> io::Result<usize> {
        // SAFETY: a zeroed msghdr is valid (no name, no control data); `IoSlice` has the
        // layout of `iovec` on Unix, and the slices outlive the call.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = slices.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = slices.len() as _;
        let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
        // SAFETY: see above; the socket is owned by the stream.
        let n = unsafe { libc::sendmsg(socket, &message, flags) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
