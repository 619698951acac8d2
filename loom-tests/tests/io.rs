//! loom models of I/O readiness: clearing never erases newer readiness, and a waiting reader
//! and writer are both woken.

#![cfg(loom)]

use std::task::{Context, Poll};

use loom::thread;
use pitcrew::loom_api::IoSource;
use pitcrew_loom_tests::*;

/// Makes the source not ready for reading, as a first read that got `WouldBlock` does.
fn drain_read(src: &IoSource) {
    let (waker, _) = flag_waker();
    if let Poll::Ready(ev) = src.poll_ready(&mut Context::from_waker(&waker), false) {
        src.clear_readiness(ev);
    }
}

/// A reader that got `WouldBlock` and clears the readiness it saw, racing with data arriving
/// (the kernel's state, then the reactor's event): the reader reads the data, finds the new
/// readiness, or is woken. No wake-up is lost.
#[test]
fn stale_clear_never_erases_newer_readiness() {
    model(|| {
        use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let src = loom::sync::Arc::new(IoSource::new());
        let data = loom::sync::Arc::new(AtomicBool::new(false));
        let (reactor_src, kernel) = (src.clone(), data.clone());
        let (waker, flag) = flag_waker();
        let reader = thread::spawn(move || {
            let mut cx = Context::from_waker(&waker);
            loop {
                let ev = match src.poll_ready(&mut cx, false) {
                    Poll::Ready(ev) => ev,
                    Poll::Pending => return false,
                };
                if data.load(SeqCst) {
                    return true;
                }
                // The read would block.
                src.clear_readiness(ev);
            }
        });
        let reactor = thread::spawn(move || {
            kernel.store(true, SeqCst);
            reactor_src.event(true, false);
        });
        let read = reader.join().unwrap();
        reactor.join().unwrap();
        assert!(read || flag.0.load(SeqCst), "a readiness event was lost");
    });
}

/// A reader and a writer waiting on one source from two tasks: one event that makes it both
/// readable and writable wakes both.
#[test]
fn reader_and_writer_on_one_source_are_both_woken() {
    model(|| {
        let src = loom::sync::Arc::new(IoSource::new());
        drain_read(&src);
        let (rw, rflag) = flag_waker();
        let (ww, wflag) = flag_waker();
        // The writer saw the initial write readiness and got WouldBlock too.
        if let Poll::Ready(ev) = src.poll_ready(&mut Context::from_waker(&ww), true) {
            src.clear_readiness(ev);
        }
        let (s1, s2, s3) = (src.clone(), src.clone(), src.clone());
        let reader = thread::spawn(move || {
            s1.poll_ready(&mut Context::from_waker(&rw), false)
                .is_ready()
        });
        let writer = thread::spawn(move || {
            s2.poll_ready(&mut Context::from_waker(&ww), true)
                .is_ready()
        });
        s3.event(true, true);
        let r = reader.join().unwrap();
        let w = writer.join().unwrap();
        let seq = loom::sync::atomic::Ordering::SeqCst;
        assert!(r || rflag.0.load(seq), "reader lost its wake-up");
        assert!(w || wflag.0.load(seq), "writer lost its wake-up");
    });
}

/// An event in flight for a source that is deregistered meanwhile, its slot reused by a new
/// source: the stale event never reaches the new source (keys carry a generation).
#[test]
fn stale_event_after_deregistration_is_ignored() {
    model(|| {
        let reactor = loom::sync::Arc::new(pitcrew::loom_api::ReactorModel::new());
        let old = reactor.register();
        let stale_key = old.key();
        let r2 = reactor.clone();
        let poller = thread::spawn(move || r2.event(stale_key));
        reactor.deregister(&old);
        let new = reactor.register();
        new.drain_read();
        poller.join().unwrap();
        assert!(
            !new.is_readable(),
            "an event for the deregistered source reached the one that reused its slot"
        );
        reactor.deregister(&new);
    });
}
