//! WebSockets closed because their session was revoked or their account suspended: the chat
//! core lists them (`Devices`), the loop closes them after the tick's events.

use tungstenite::protocol::frame::coding::CloseCode;

use super::Server;

impl Server {
    /// Closes the WebSockets the tick's revocations named, after the tick's other frames.
    pub(super) fn close_revoked(&mut self) {
        if !self.chat.devices.has_closing() {
            return;
        }
        for (id, code, reason) in self.chat.devices.take_closing() {
            if self.is_live(id) {
                self.close_websocket_after_tick(id.key, CloseCode::from(code), reason);
            }
        }
    }
}
