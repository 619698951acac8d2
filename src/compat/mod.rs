//! Adapters to other ecosystems' traits, each behind its feature: `tokio-io` (tokio's
//! `AsyncRead`/`AsyncWrite` on the `net` streams) and `hyper` ([`pitcrew::hyper`](crate::hyper)).

// Design notes
// ============
//
// Both adapters must fill a caller's *uninitialised* read buffer (tokio's `ReadBuf`, hyper's
// `ReadBufCursor`) without zeroing it first: zeroing 8-64 KiB before every read costs more
// than the read on a fast connection. The net streams provide `poll_read_uninit`, a `read(2)`
// straight into `&mut [MaybeUninit<u8>]`, after which the adapter marks the bytes the kernel
// wrote as initialised. Nothing ever forms a `&mut [u8]` over uninitialised memory: that would
// hand safe code (any `futures_io::AsyncRead` impl may read its buffer) memory it must not read.
//
// `HyperIo<T>` wraps *any* futures-io stream, and Rust has no specialisation, so it picks the
// path at compile time through `TypeId` (`T: 'static`, which hyper's connection futures need
// anyway): pitcrew's own streams take the uninitialised path, every other type gets a buffer
// it may read, zeroed, at most 16 KiB per read. See `hyper.rs`.
//
// `HyperExecutor` and `HyperTimer` are stateless handles to "the current runtime": hyper calls
// them from the tasks that drive its connections, which run on a pitcrew runtime.

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
mod tokio_io;
