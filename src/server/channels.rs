//! Channels between the daemon's threads. All are bounded; a full channel is
//! backpressure for the sender, never a silent drop of a client request.
//!
//! The reactor sleeps in `mio::Poll`, so the one channel into it, [`ReactorSender`],
//! wakes it: once per batch, not once per message (Pelikan's `WakingSender`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendError, Sender};

/// The sending side of the channel into the reactor. Cloned by every thread that
/// replies to clients.
pub struct ReactorSender<T> {
    sender: Sender<T>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
}

// Manual impl: a derive would needlessly require `T: Clone`.
impl<T> Clone for ReactorSender<T> {
    fn clone(&self) -> Self {
        ReactorSender {
            sender: self.sender.clone(),
            waker: Arc::clone(&self.waker),
            wake_pending: Arc::clone(&self.wake_pending),
        }
    }
}

/// The reactor's side: drains messages and re-arms the wake flag.
pub struct ReactorReceiver<T> {
    receiver: Receiver<T>,
    wake_pending: Arc<AtomicBool>,
}

/// Creates the reactor's inbound channel with `capacity` slots, woken through `waker`.
pub fn reactor_channel<T>(
    capacity: usize,
    waker: Arc<mio::Waker>,
) -> (ReactorSender<T>, ReactorReceiver<T>) {
    let (sender, receiver) = crossbeam_channel::bounded(capacity);
    let wake_pending = Arc::new(AtomicBool::new(false));
    let sending = ReactorSender { sender, waker, wake_pending: Arc::clone(&wake_pending) };
    (sending, ReactorReceiver { receiver, wake_pending })
}

impl<T> ReactorSender<T> {
    /// Sends `message`, blocking while the reactor is behind, and wakes the reactor
    /// unless a wake is already pending. Fails only when the reactor has exited.
    pub fn send(&self, message: T) -> Result<(), SendError<T>> {
        self.sender.send(message)?;
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the poll instance is gone, i.e. the reactor exited;
            // the message is then moot, like a reply to a closed connection.
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

impl<T> ReactorReceiver<T> {
    /// Re-arms the wake flag, then returns up to `max` queued messages. Re-arming
    /// first means a message sent during the drain wakes the reactor again.
    pub fn drain(&self, max: usize, into: &mut Vec<T>) {
        self.wake_pending.store(false, Ordering::Release);
        into.extend(self.receiver.try_iter().take(max));
    }

    /// Whether messages are still queued (the reactor drained only `max`).
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }
}
