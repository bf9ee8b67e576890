//! The sending side of the event channel: results are never dropped, progress may be, and the
//! app's waker is called after every event sent.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender};

use super::Event;

/// The app's waker (e.g. `ctx.request_repaint()`).
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

/// How often a blocked result send looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Sends events and wakes the app.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: Sender<Event>,
    waker: Waker,
    stop: Arc<AtomicBool>,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink").field("queued", &self.tx.len()).finish_non_exhaustive()
    }
}

impl EventSink {
    /// A sink on `tx`; `stop` (set by the handle when it shuts the worker down) ends a wait for
    /// room in a full channel.
    pub(crate) fn new(tx: Sender<Event>, waker: Waker, stop: Arc<AtomicBool>) -> Self {
        Self { tx, waker, stop }
    }

    /// Sends a result: waits for room rather than drop it, unless the worker is stopping or the
    /// app has gone.
    pub(crate) fn send(&self, event: Event) {
        let mut event = event;
        loop {
            match self.tx.send_timeout(event, STOP_POLL) {
                Ok(()) => {
                    (self.waker)();
                    return;
                }
                Err(SendTimeoutError::Timeout(back)) if !self.stop.load(Ordering::Relaxed) => event = back,
                Err(SendTimeoutError::Timeout(_) | SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }

    /// Sends progress if there is room; returns whether it was sent.
    pub(crate) fn try_send(&self, event: Event) -> bool {
        let sent = self.tx.try_send(event).is_ok();
        if sent {
            (self.waker)();
        }
        sent
    }
}
