//! The client port's access rules: `Authenticate` raises a connection's access with the
//! admin or the client token (compared in constant time), and a request the connection
//! has no token for is refused as `Unauthorized` before it reaches the state thread.

use std::time::Instant;

use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, MemberId, Message, Update};
use tracing::warn;

use super::connection::Access;
use super::{Reactor, SecurityCounters};
use crate::core::{ConnectionId, ReplyTo};
use crate::server::link_auth::token_matches;
use crate::server::state_thread::StateEvent;
use crate::server::test_switches;

impl Reactor {
    /// A client request: `Authenticate` is answered here; a request the connection has
    /// no token for is refused as `Unauthorized`; the rest go to the state thread.
    pub(super) fn on_client_request(
        &mut self,
        id: ConnectionId,
        correlation_id: u64,
        mut request: ClientRequest,
        frame_bytes: usize,
        now: Instant,
    ) {
        if let ClientRequest::Update { update: Update::Append { max_value_bytes, .. }, .. } =
            &mut request
        {
            // An append may grow a value no further than this herald's limit allows.
            *max_value_bytes = (*max_value_bytes).min(self.options.limits.max_value_bytes);
        }
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let access = connection.access;
        if let ClientRequest::Authenticate { token } = &request {
            let answer = self.authenticate(id, token);
            self.queue_message(id, correlation_id, &answer, now);
            return;
        }
        if let Err(reason) = self.authorize(access, &request) {
            SecurityCounters::add(&self.options.security.unauthorized_requests);
            if matches!(request, ClientRequest::Status) {
                // Status without the client token says only who answers and what to do.
                let json = serde_json::json!({
                    "member": self.options.member_id.map(MemberId::get),
                    "authenticated": false,
                    "hint": reason,
                })
                .to_string();
                let status = Message::Response(ClientResponse::Status { json });
                self.queue_message(id, correlation_id, &status, now);
            } else {
                let error = ErrorResponse::Unauthorized { reason };
                self.reply_error(id, correlation_id, error, now);
            }
            return;
        }
        if request.key().is_some() {
            let armed = &mut self.options.panic_on_first_keyed_request;
            test_switches::panic_if(armed, "its first keyed request");
        }
        let reply_to = ReplyTo { connection: id, correlation_id };
        if let Some(connection) = self.connections.get_mut(id) {
            connection.inflight += 1;
        }
        let charge = self.options.memory.charge_queued(frame_bytes);
        self.hand_to_state(id, StateEvent::Client { reply_to, request, charge });
    }

    /// Checks `token` against the admin and the client token (each in constant time) and
    /// raises the connection's access; repeated failures close the connection.
    pub(super) fn authenticate(&mut self, id: ConnectionId, token: &[u8]) -> Message {
        let tokens = &self.options.tokens;
        let matches = |expected: &Option<Vec<u8>>| {
            expected.as_deref().is_some_and(|expected| token_matches(token, expected))
        };
        let granted = if matches(&tokens.admin) {
            Some(Access::Admin)
        } else if matches(&tokens.client) {
            Some(Access::Client)
        } else {
            None
        };
        let Some(connection) = self.connections.get_mut(id) else {
            return Message::Response(ClientResponse::Done);
        };
        if let Some(granted) = granted {
            connection.access = connection.access.max(granted);
            return Message::Response(ClientResponse::Done);
        }
        SecurityCounters::add(&self.options.security.failed_authentications);
        connection.failed_authentications += 1;
        warn!(
            peer = %connection.peer_address,
            failures = connection.failed_authentications,
            "reactor: a client presented a token that matches neither the admin nor the client \
             token"
        );
        if connection.failed_authentications >= crate::limits::MAX_FAILED_AUTHENTICATIONS {
            connection.closing = true;
        }
        let reason = if self.options.tokens.admin.is_none() && self.options.tokens.client.is_none()
        {
            "this radiant has no tokens (no admin_token_file, no client_token_file): connect \
             without one (unset RADIANT_TOKEN, drop --token-file)"
                .to_string()
        } else {
            "the token matches neither the admin token nor the client token of this radiant; \
             check the --token-file or RADIANT_TOKEN you gave"
                .to_string()
        };
        Message::Error(ErrorResponse::Unauthorized { reason })
    }

    /// Whether a connection with `access` may make `request`; if not, what to do.
    pub(super) fn authorize(&self, access: Access, request: &ClientRequest) -> Result<(), String> {
        let tokens = &self.options.tokens;
        if request.is_admin() {
            if access == Access::Admin || tokens.admin_open_without_token {
                return Ok(());
            }
            return Err(if tokens.admin.is_none() {
                "admin requests are refused: this radiant has no admin_token_file; set one in \
                 its configuration and present that token (--token-file or RADIANT_TOKEN)"
                    .to_string()
            } else {
                "admin requests need the admin token: present it with --token-file FILE or \
                 RADIANT_TOKEN"
                    .to_string()
            });
        }
        if tokens.client.is_none() || access >= Access::Client {
            return Ok(());
        }
        Err("this radiant requires the client token (client_token_file): present it with \
             --token-file FILE or RADIANT_TOKEN, or `token` in ClientOptions"
            .to_string())
    }
}
