//! A running queue taking new effective settings when a policy that applies to it is set,
//! changed or cleared (`QueueCmd::SetArgs`, sent by `vhost::policies`). The settings are
//! computed by `warren_core::policy::effective_queue_args`; this only installs them.

use super::{QueueCmd, QueueHandle, QueueTask};
use std::sync::atomic::Ordering;
use warren_core::args::QueueArgs;

impl QueueHandle {
    /// Hands the queue new effective settings, without waiting (the vhost calls this under
    /// its definitions lock). If they may refuse publishes, publishers start asking this
    /// queue for their confirms at once, so that a refusal is answered with `basic.nack`;
    /// turning that off waits until the queue runs without the limit. A publish routed in the
    /// instant before this call and applied after the new settings could still be refused
    /// without a nack: the window is one publish batch of a connection racing the change.
    pub(crate) fn set_args(&self, args: QueueArgs) {
        if args.may_refuse_publishes() {
            self.may_refuse.store(true, Ordering::Relaxed);
        }
        // A queue that is gone has nothing to apply them to.
        let _ = self.control.send(QueueCmd::SetArgs(args));
    }
}

impl QueueTask {
    pub(super) fn set_args(&mut self, args: QueueArgs) {
        if self.state.args() == &args {
            return;
        }
        let may_refuse = args.may_refuse_publishes();
        let expires = args.expires_ms;
        self.state.set_args(args);
        self.queue.may_refuse.store(may_refuse, Ordering::Relaxed);
        // RabbitMQ restarts the `x-expires` countdown when a policy changes the settings.
        if expires.is_some() {
            self.touch();
        }
        // Messages a lower limit dropped are dead-lettered by the loop's `bury`, and the
        // loop's next wake-up follows the new deadlines.
    }
}
